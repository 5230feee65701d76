"""3D UX-Net trainer: shared SGD recipe by default; `--optimizer adamw` = the UX-Net papers' AdamW lr 1e-4."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class UXNetTrainer(Trainer):
    """3D UX-Net; `--optimizer adamw`: AdamW lr 1e-4 (UX-Net family papers), weight decay 1e-5, poly LR kept."""

    name = "uxnet_trainer"
    network_name = "uxnet"
    optimizers = ("sgd", "adamw")
    seed_recipe = "uxnet"
