"""Experiment planner, network topology, plans model (JSON), presets and overrides."""
