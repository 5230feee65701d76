"""TransBTS trainer: shared SGD recipe by default; `--optimizer adamw` = the 3D UX-Net seeds' AdamW lr 1e-4."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class TransBTSTrainer(Trainer):
    """TransBTS (single head, no deep supervision); `--optimizer adamw` as the UX-Net papers trained it."""

    name = "transbts_trainer"
    network_name = "transbts"
    optimizers = ("sgd", "adamw")
