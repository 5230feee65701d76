"""nnU-Net v1 "moreDA" augmentation (batchgenerators) and the target transforms shared with validation.

Rotation/scaling and simulated low resolution are our torch versions (`resample_transforms`): same random
parameters as batchgenerators' transforms, linear instead of cubic-spline resampling, ~4x faster batches.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from batchgenerators.augmentations.utils import rotate_coords_2d, rotate_coords_3d
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (BrightnessMultiplicativeTransform,
                                                         ContrastAugmentationTransform, GammaTransform)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform
from batchgenerators.transforms.utility_transforms import RemoveLabelTransform

from unetr_pp.training.data.resample_transforms import (AffineSpatialTransform, LowResolutionTransform,
                                                        downsample_labels)

DEG = np.pi / 180.0
ROTATION_3D = (-30.0 * DEG, 30.0 * DEG)          # nnUNetTrainerV2.setup_DA_params
ROTATION_DUMMY_2D = (-180.0 * DEG, 180.0 * DEG)  # default_2D_augmentation_params["rotation_x"]
SCALE_RANGE = (0.7, 1.4)
SCALE_RANGE_FOR_PATCH = (0.85, 1.25)  # nnU-Net v1 enlarges the patch with the default range, before setting SCALE_RANGE
GAMMA_RANGE = (0.7, 1.5)
DUMMY_2D_ANISOTROPY = 3.0             # experiment planner: max(patch) / patch[0] > 3 -> dummy 2D


def use_dummy_2d(patch_size: Sequence[int]) -> bool:
    """nnU-Net v1 rule: augment in 2D slices when the patch is very anisotropic (max / first axis > 3)."""
    return max(patch_size) / patch_size[0] > DUMMY_2D_ANISOTROPY


def rotation_range(patch_size: Sequence[int]) -> tuple[float, float]:
    """Rotation angle range in radians: in-plane ±180° for dummy 2D, else ±30° about every axis."""
    return ROTATION_DUMMY_2D if use_dummy_2d(patch_size) else ROTATION_3D


def get_patch_size(final_patch_size: Sequence[int], rot_x: tuple[float, float], rot_y: tuple[float, float],
                   rot_z: tuple[float, float], scale_range: tuple[float, float]) -> tuple[int, ...]:
    """nnU-Net v1 `get_patch_size`: the patch that still covers `final_patch_size` after rotation/scaling."""
    rx, ry, rz = (min(90 * DEG, max(abs(a) for a in r)) for r in (rot_x, rot_y, rot_z))
    coords = np.array(final_patch_size, dtype=float)
    final_shape = np.copy(coords)
    if len(coords) == 3:
        for angles in ((rx, 0, 0), (0, ry, 0), (0, 0, rz)):
            final_shape = np.max(np.vstack((np.abs(rotate_coords_3d(coords, *angles)), final_shape)), 0)
    else:
        final_shape = np.max(np.vstack((np.abs(rotate_coords_2d(coords, rx)), final_shape)), 0)
    final_shape /= min(scale_range)
    return tuple(int(v) for v in final_shape.astype(int))


def sampling_patch_size(patch_size: Sequence[int]) -> tuple[int, int, int]:
    """Enlarged patch cut from the case for training (dummy 2D: first axis kept, in-plane enlargement)."""
    rot = rotation_range(patch_size)
    if use_dummy_2d(patch_size):
        return (int(patch_size[0]),) + get_patch_size(patch_size[1:], rot, ROTATION_3D, ROTATION_3D,
                                                      SCALE_RANGE_FOR_PATCH)
    return get_patch_size(patch_size, rot, rot, rot, SCALE_RANGE_FOR_PATCH)


class Convert3DTo2DTransform(AbstractTransform):
    """(B, C, X, Y, Z) -> (B, C*X, Y, Z) for data and seg, remembering the original shapes."""

    def __call__(self, **batch):
        for key in ("data", "seg"):
            shp = batch[key].shape
            batch[f"orig_shape_{key}"] = shp
            batch[key] = batch[key].reshape((shp[0], shp[1] * shp[2], shp[3], shp[4]))
        return batch


class Convert2DTo3DTransform(AbstractTransform):
    """Undo Convert3DTo2DTransform: (B, C*X, Y', Z') -> (B, C, X, Y', Z')."""

    def __call__(self, **batch):
        for key in ("data", "seg"):
            shp, cur = batch.pop(f"orig_shape_{key}"), batch[key].shape
            batch[key] = batch[key].reshape((shp[0], shp[1], shp[2], cur[-2], cur[-1]))
        return batch


class MaskTransform(AbstractTransform):
    """Set data channels normalised inside the nonzero mask to 0 where seg < 0 (outside the mask)."""

    def __init__(self, use_mask_for_norm: Sequence[bool]) -> None:
        self.channels = [c for c, used in enumerate(use_mask_for_norm) if used]

    def __call__(self, **batch):
        outside = batch["seg"][:, 0] < 0
        for c in self.channels:
            batch["data"][:, c][outside] = 0
        return batch


class SegToTargetTransform(AbstractTransform):
    """seg (B, 1, ...) -> target: int16 labels, or uint8 region masks (B, R, ...) when `regions` is given.

    Compact dtypes keep the worker -> main process transfer small; BatchLoader casts to int64 / float32.
    """

    def __init__(self, regions: Sequence[Sequence[int]] | None) -> None:
        self.regions = [list(r) for r in regions] if regions else None

    def __call__(self, **batch):
        seg = np.rint(batch.pop("seg")[:, :1]).astype(np.int16)
        if self.regions is None:
            batch["target"] = seg
        else:
            batch["target"] = np.concatenate([np.isin(seg, r) for r in self.regions], axis=1).astype(np.uint8)
        return batch


class DownsampleTargetForDSTransform(AbstractTransform):
    """target -> list of targets, one per deep-supervision scale (nearest, as DownsampleSegForDSTransform2)."""

    def __init__(self, scales: Sequence[Sequence[float]] | None) -> None:
        self.scales = [tuple(float(v) for v in s) for s in scales] if scales else [(1.0, 1.0, 1.0)]

    def __call__(self, **batch):
        target = batch["target"]
        outputs = []
        for scale in self.scales:
            if all(s == 1 for s in scale):
                outputs.append(target)
                continue
            shape = tuple(int(v) for v in np.round(np.array(target.shape[2:]) * np.array(scale)))
            outputs.append(downsample_labels(target, shape))
        batch["target"] = outputs
        return batch


def target_transforms(regions: Sequence[Sequence[int]] | None,
                      ds_scales: Sequence[Sequence[float]] | None) -> list[AbstractTransform]:
    """-1 -> 0, labels/regions, deep-supervision targets (the tail of training and validation)."""
    return [RemoveLabelTransform(-1, 0), SegToTargetTransform(regions), DownsampleTargetForDSTransform(ds_scales)]


def training_transforms(patch_size: Sequence[int], mirror_axes: Sequence[int], use_mask_for_norm: Sequence[bool],
                        regions: Sequence[Sequence[int]] | None,
                        ds_scales: Sequence[Sequence[float]] | None) -> Compose:
    """nnU-Net v1 `get_moreDA_augmentation` training pipeline for 3D patches (no elastic deformation, linear)."""
    dummy_2d = use_dummy_2d(patch_size)
    rot = rotation_range(patch_size)
    transforms: list[AbstractTransform] = [Convert3DTo2DTransform()] if dummy_2d else []
    transforms.append(AffineSpatialTransform(
        tuple(patch_size[1:]) if dummy_2d else tuple(patch_size), angle_x=rot, angle_y=ROTATION_3D,
        angle_z=ROTATION_3D, scale=SCALE_RANGE, p_rot_per_sample=0.2, p_scale_per_sample=0.2, border_cval_seg=-1))
    if dummy_2d:
        transforms.append(Convert2DTo3DTransform())
    transforms += [
        GaussianNoiseTransform(p_per_sample=0.1),
        GaussianBlurTransform((0.5, 1.0), different_sigma_per_channel=True, p_per_sample=0.2, p_per_channel=0.5),
        BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
        ContrastAugmentationTransform(p_per_sample=0.15),
        LowResolutionTransform((0.5, 1), p_per_sample=0.25, p_per_channel=0.5, ignore_axes=(0,) if dummy_2d else None),
        GammaTransform(GAMMA_RANGE, True, True, retain_stats=True, p_per_sample=0.1),
        GammaTransform(GAMMA_RANGE, False, True, retain_stats=True, p_per_sample=0.3),
    ]
    if mirror_axes:
        transforms.append(MirrorTransform(tuple(mirror_axes)))
    if any(use_mask_for_norm):
        transforms.append(MaskTransform(use_mask_for_norm))
    return Compose(transforms + target_transforms(regions, ds_scales))


def validation_transforms(regions: Sequence[Sequence[int]] | None,
                          ds_scales: Sequence[Sequence[float]] | None) -> Compose:
    """Validation batches: no augmentation, only the target transforms."""
    return Compose(target_transforms(regions, ds_scales))
