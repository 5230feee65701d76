"""3D DeformUX-Net trainer (UX-Net family recipe options)."""
from __future__ import annotations

from unetr_pp.training.trainers.uxnet import UXNetTrainer


class DeformUXNetTrainer(UXNetTrainer):
    """3D DeformUX-Net (deformable depth-wise conv); `--optimizer adamw` as the UX-Net trainer."""

    name = "deformuxnet_trainer"
    network_name = "deformuxnet"
