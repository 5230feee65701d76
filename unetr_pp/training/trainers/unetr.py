"""UNETR (MONAI-equivalent) trainer: shared SGD recipe by default; `--optimizer adamw` = its authors' AdamW 1e-4."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class UNETRTrainer(Trainer):
    """UNETR; AdamW lr 1e-4, weight decay 1e-5 (the UNETR BTCV recipe) offered as `--optimizer adamw`."""

    name = "unetr_trainer"
    network_name = "unetr"
    optimizers = ("sgd", "adamw")
    seed_recipe = "unetr_btcv"
