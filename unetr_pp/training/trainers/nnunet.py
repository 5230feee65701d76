"""nnU-Net generic UNet with the shared recipe."""
from __future__ import annotations

from unetr_pp.training.trainer import Trainer


class NNUNetTrainer(Trainer):
    """nnU-Net v1 recipe (SGD 1e-2, poly LR, Dice+CE, deep supervision) on the plans' UNet."""

    name = "nnunet_trainer"
    network_name = "nnunet"
    seed_recipe = "nnunet"
    deep_supervision_mask_lowest = True
