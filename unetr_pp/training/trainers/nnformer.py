"""nnFormer trainer: shared SGD recipe by default (as nnFormer's own nnU-Net-based trainer); `--optimizer adamw` =
the 3D UX-Net seeds' AdamW lr 1e-4."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class NNFormerTrainer(Trainer):
    """nnFormer with deep supervision at scales 1, 1/2, 1/4; `--optimizer adamw` as the UX-Net papers trained it."""

    name = "nnformer_trainer"
    network_name = "nnformer"
    optimizers = ("sgd", "adamw")
