"""Learning-rate schedules, stepped once per epoch: poly (nnU-Net v1 / UNETR++), warmup_cosine (MONAI
research-contributions `LinearWarmupCosineAnnealingLR`), constant (3D UX-Net: no scheduler)."""
from __future__ import annotations

import math

from torch.optim import Optimizer

POLY_EXPONENT = 0.9


def poly_lr(epoch: int, max_epochs: int, initial_lr: float, exponent: float = POLY_EXPONENT) -> float:
    """initial_lr * (1 - epoch / max_epochs) ** exponent."""
    return initial_lr * (1 - epoch / max_epochs) ** exponent


def warmup_cosine_lr(epoch: int, max_epochs: int, initial_lr: float, warmup_epochs: int,
                     warmup_start_lr: float = 0.0, eta_min: float = 0.0) -> float:
    """Linear warm-up from `warmup_start_lr` over `warmup_epochs`, then cosine annealing to `eta_min`."""
    if epoch < warmup_epochs:
        if warmup_epochs == 1:
            return warmup_start_lr
        return warmup_start_lr + epoch * (initial_lr - warmup_start_lr) / (warmup_epochs - 1)
    span = max(max_epochs - warmup_epochs, 1)
    return eta_min + 0.5 * (initial_lr - eta_min) * (1 + math.cos(math.pi * (epoch - warmup_epochs) / span))


def lr_at(schedule: str, epoch: int, max_epochs: int, initial_lr: float, warmup_epochs: int = 0) -> float:
    """The learning rate of `schedule` (poly | warmup_cosine | constant) at the start of `epoch`."""
    if schedule == "poly":
        return poly_lr(epoch, max_epochs, initial_lr)
    if schedule == "warmup_cosine":
        return warmup_cosine_lr(epoch, max_epochs, initial_lr, min(warmup_epochs, max_epochs))
    return initial_lr


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
