"""UNETR++ trainers: the shared nnU-Net recipe (as the UNETR++ authors), plus the seed's preset trainers.

The preset trainers (`unetr_pp_trainer_synapse`, `_acdc`, `_lung`, `_tumor`) train the official configuration:
plans made with `--preset <name>` are used as they are (overrides included); other plans get the preset's
3d_fullres patch, batch, pooling and network_kwargs (and preset split) applied before training, and the
applied plans go into the checkpoint sidecar so prediction rebuilds the same network.
"""
from __future__ import annotations

from unetr_pp.io.plans import Plans
from unetr_pp.planning.presets import CONFIG, merge_preset_and_overrides
from unetr_pp.training.trainer import Trainer
from unetr_pp.utilities.errors import UnetrPPError


class UNETRPPTrainer(Trainer):
    """UNETR++ with the recipe of the UNETR++ paper (nnU-Net v1: SGD 1e-2, poly LR, Dice+CE, 3 DS outputs, fp32)."""

    name = "unetr_pp_trainer"
    network_name = "unetr_pp"
    amp_default = False
    seed_recipe = "unetr_pp"

    def prepare_plans(self, plans: Plans, configuration: str) -> Plans:
        """Plans as given, or with this trainer's preset applied (see the module docstring)."""
        if self.preset is None or plans.preset == self.preset:
            return plans
        if configuration != CONFIG:
            raise UnetrPPError(f"trainer {self.name} trains the {self.preset} preset, which defines only {CONFIG}; "
                               f"got configuration {configuration!r}")
        return merge_preset_and_overrides(plans, self.preset, []).replace(overrides=plans.overrides)


class UNETRPPTrainerSynapse(UNETRPPTrainer):
    """UNETR++ Synapse preset: patch 64x128x128, batch 2, stem (2,4,4), fixed 18/12 split when the ids exist."""

    name = "unetr_pp_trainer_synapse"
    preset = "synapse"


class UNETRPPTrainerACDC(UNETRPPTrainer):
    """UNETR++ ACDC preset: patch 16x160x160, batch 4, stem (1,4,4)."""

    name = "unetr_pp_trainer_acdc"
    preset = "acdc"


class UNETRPPTrainerLung(UNETRPPTrainer):
    """UNETR++ Lung preset: patch 32x192x192, batch 2, stem (1,4,4)."""

    name = "unetr_pp_trainer_lung"
    preset = "lung"


class UNETRPPTrainerTumor(UNETRPPTrainer):
    """UNETR++ Tumor (BraTS) preset: patch 128^3, stem (4,4,4), region training when the plans have regions."""

    name = "unetr_pp_trainer_tumor"
    preset = "tumor"
