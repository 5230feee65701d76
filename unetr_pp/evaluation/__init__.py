"""Metrics (Dice, HD95), evaluation protocols and reports (json/csv/md)."""
