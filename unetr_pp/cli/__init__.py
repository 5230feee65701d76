"""Thin argparse front-ends (console scripts); the logic lives in the stage packages."""
