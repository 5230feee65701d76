"""3D RepUX-Net trainer (UX-Net family recipe options)."""
from __future__ import annotations

from unetr_pp.training.trainers.uxnet import UXNetTrainer


class RepUXNetTrainer(UXNetTrainer):
    """3D RepUX-Net (k=21, BFM-weighted kernels); `--optimizer adamw` as the UX-Net trainer."""

    name = "repuxnet_trainer"
    network_name = "repuxnet"
