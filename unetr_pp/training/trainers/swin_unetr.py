"""SwinUNETR trainer: shared SGD recipe by default; `--optimizer adamw` = its authors' AdamW 1e-4."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class SwinUNETRTrainer(Trainer):
    """SwinUNETR; AdamW lr 1e-4, weight decay 1e-5 (the SwinUNETR BTCV recipe) offered as `--optimizer adamw`."""

    name = "swin_unetr_trainer"
    network_name = "swin_unetr"
    optimizers = ("sgd", "adamw")
    seed_recipe = "swin_unetr_btcv"
