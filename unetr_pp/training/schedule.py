"""Poly learning-rate schedule, stepped once per epoch (nnU-Net v1 / UNETR++)."""
from __future__ import annotations

from torch.optim import Optimizer

POLY_EXPONENT = 0.9


def poly_lr(epoch: int, max_epochs: int, initial_lr: float, exponent: float = POLY_EXPONENT) -> float:
    """initial_lr * (1 - epoch / max_epochs) ** exponent."""
    return initial_lr * (1 - epoch / max_epochs) ** exponent


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
