"""Thin argparse front-ends (console scripts); the logic lives in the stage packages.

Importing this package (every command does, before torch loads) makes idle OpenMP threads sleep instead of
spinning, unless OMP_WAIT_POLICY is set: with spinning threads, any other load on the cores (data
augmentation or export workers, a second job) slowed a CPU training step 1.6-10x here (docs/training.md).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
