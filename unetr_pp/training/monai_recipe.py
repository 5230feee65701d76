"""The MONAI seeds' recipe parts, built from MONAI's own classes: DiceCE loss, the BTCV / 3D UX-Net patch
augmentations, and the intensity window + target spacing of their preprocessing.

Our arrays are (C, z, y, x); MONAI's seeds load NIfTI as (C, x, y, z). Axis-symmetric transforms (flips on
every axis, intensity) are used as they are; plane-dependent ones are mapped: MONAI `RandRotate90d` default
plane (x, y) -> our spatial axes (1, 2); `RandAffined` rotation about z (their third angle) -> our first.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from monai.losses import DiceCELoss as MonaiDiceCELoss
from monai.transforms import (Compose, CropForegroundd, RandAffined, RandFlipd, RandRotate90d, RandScaleIntensityd,
                              RandShiftIntensityd, ScaleIntensityRanged)

from unetr_pp.training.recipes import IntensityWindow, Recipe
from unetr_pp.utilities.errors import UnetrPPError

# UNETR/BTCV main.py defaults: --RandFlipd_prob 0.2, --RandRotate90d_prob 0.2, --RandScaleIntensityd_prob 0.1,
# --RandShiftIntensityd_prob 0.1; data_utils.py: factors 0.1, offsets 0.1, max_k 3.
BTCV_PROBS = {"flip": 0.2, "rot90": 0.2, "scale": 0.1, "shift": 0.1}
# load_datasets_transforms.py (FLARE / AMOS): RandShiftIntensityd(0.10, prob 0.50), RandAffined(prob 1.0,
# rotate_range (0, 0, pi/30), scale_range 0.1 per axis, bilinear / nearest); FeTA rotates up to pi/15.
UXNET_ROTATE = math.pi / 30


def monai_loss(recipe: Recipe) -> torch.nn.Module:
    """MONAI `DiceCELoss(to_onehot_y=True, softmax=True, ...)` with the recipe's squared_pred and smoothing."""
    return MonaiDiceCELoss(to_onehot_y=True, softmax=True, squared_pred=recipe.squared_pred,
                           smooth_nr=recipe.smooth_nr, smooth_dr=recipe.smooth_dr)


def patch_augmentation(recipe: Recipe, patch_size: Sequence[int] | None = None) -> Compose:
    """Per-sample MONAI augmentation of {"image": (C, z, y, x), "label": (1, z, y, x)} for the recipe.

    The seeds' 96^3 patches are cubes; on a patch whose (y, x) plane is not square a 90-degree turn would change
    the patch shape, so `RandRotate90d` becomes a 180-degree turn (both in-plane axes flipped) with its probability.
    """
    keys = ["image", "label"]
    if recipe.augmentation == "monai_btcv":
        square = patch_size is None or patch_size[1] == patch_size[2]
        rotate = (RandRotate90d(keys, prob=BTCV_PROBS["rot90"], max_k=3, spatial_axes=(1, 2)) if square
                  else RandFlipd(keys, prob=BTCV_PROBS["rot90"], spatial_axis=(1, 2)))
        return Compose([RandFlipd(keys, prob=BTCV_PROBS["flip"], spatial_axis=0),
                        RandFlipd(keys, prob=BTCV_PROBS["flip"], spatial_axis=1),
                        RandFlipd(keys, prob=BTCV_PROBS["flip"], spatial_axis=2),
                        rotate,
                        RandScaleIntensityd("image", factors=0.1, prob=BTCV_PROBS["scale"]),
                        RandShiftIntensityd("image", offsets=0.1, prob=BTCV_PROBS["shift"])])
    if recipe.augmentation == "uxnet":
        return Compose([RandShiftIntensityd("image", offsets=0.10, prob=0.50),
                        RandAffined(keys, mode=("bilinear", "nearest"), prob=1.0,
                                    rotate_range=(UXNET_ROTATE, 0, 0), scale_range=(0.1, 0.1, 0.1))])
    raise UnetrPPError(f"recipe {recipe.name}: augmentation {recipe.augmentation!r} is not a MONAI one")


def batch_augmenter(recipe: Recipe, seed: int, patch_size: Sequence[int] | None = None) -> Callable[[dict], dict]:
    """Apply `patch_augmentation` to every sample of a loader batch {"data": (B, C, *S), "target": [(B, 1, *S)]}."""
    transform = patch_augmentation(recipe, patch_size)
    transform.set_random_state(seed=seed % 2 ** 32)

    def augment(batch: dict) -> dict:
        images, labels = [], []
        for image, label in zip(batch["data"], batch["target"][0]):
            out = transform({"image": image.numpy(), "label": label.numpy().astype(np.float32)})
            images.append(torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32))
            labels.append(torch.as_tensor(np.asarray(out["label"])).round().long())
        return {**batch, "data": torch.stack(images), "target": [torch.stack(labels)]}

    return augment


def intensity_pipeline(window: IntensityWindow) -> Compose:
    """The seeds' intensity part on a loaded (C, x, y, z) volume: `ScaleIntensityRanged` (clip) then
    `CropForegroundd` on the image (resampling to `window.pixdim_xyz` with `Spacingd` precedes it there)."""
    return Compose([ScaleIntensityRanged("image", a_min=window.a_min, a_max=window.a_max, b_min=window.b_min,
                                         b_max=window.b_max, clip=True),
                    CropForegroundd(["image", "label"], source_key="image")])
