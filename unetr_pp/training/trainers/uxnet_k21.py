"""3D UX-Net k=21 trainer (the UX-Net trainer's recipe options for the `uxnet_k21` preset)."""
from __future__ import annotations

from unetr_pp.training.trainers.uxnet import UXNetTrainer


class UXNetK21Trainer(UXNetTrainer):
    """3D UX-Net with 21^3 depthwise kernels; `--optimizer adamw` as the UX-Net trainer."""

    name = "uxnet_k21_trainer"
    network_name = "uxnet_k21"
