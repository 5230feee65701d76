"""UNesT trainers (Base and Large): shared SGD recipe by default; `--optimizer adamw` = AdamW lr 1e-4."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class UNesTBaseTrainer(Trainer):
    """UNesT Base (embed 128/256/512, depths 2/2/8); single head; `--optimizer adamw` as the UX-Net papers."""

    name = "unest_base_trainer"
    network_name = "unest_base"
    optimizers = ("sgd", "adamw")


class UNesTLargeTrainer(UNesTBaseTrainer):
    """UNesT Large (embed 192/384/768, depths 2/2/20); single head; `--optimizer adamw` as the UX-Net papers."""

    name = "unest_large_trainer"
    network_name = "unest_large"
