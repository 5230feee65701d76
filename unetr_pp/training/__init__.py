"""Trainer base, per-architecture trainers, losses, LR schedule, data loading, splits, checkpoints."""
