"""Our torch resampling augmentations against batchgenerators' own transforms at linear order, same seeds."""
from __future__ import annotations

import numpy as np
import pytest
from batchgenerators.augmentations.utils import resize_segmentation
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import SpatialTransform

from unetr_pp.training.data.augmentation import training_transforms
from unetr_pp.training.data.resample_transforms import (AffineSpatialTransform, LowResolutionTransform,
                                                        downsample_labels)

DEG = np.pi / 180
ANGLES = (-30 * DEG, 30 * DEG)


def organ_labels(shape: tuple[int, ...], channels: int) -> np.ndarray:
    """(2, channels, *shape) float32 label maps: nested ellipsoids 1/2, a slab 3, a padded (-1) border."""
    grid = np.indices(shape)
    centre = [s / 2 for s in shape]
    radius = sum(((grid[i] - centre[i]) / (s / 3)) ** 2 for i, s in enumerate(shape))
    labels = np.where(radius < 1, 1, 0) + np.where(radius < 0.4, 1, 0) + np.where(grid[-1] > shape[-1] * 0.8, 3, 0)
    seg = np.repeat(np.repeat(labels[None, None].astype(np.float32), channels, 1), 2, 0)
    seg[:, :, :3] = -1
    return seg


@pytest.mark.parametrize("data_shape,patch", [((2, 1, 40, 50, 45), (24, 32, 30)),   # 3D
                                              ((2, 6, 60, 55), (40, 36))])          # dummy 2D: slices as channels
def test_affine_spatial_equals_batchgenerators_at_linear_order(data_shape, patch):
    rng = np.random.default_rng(1)
    data = rng.normal(size=data_shape).astype(np.float32)
    seg = organ_labels(data_shape[2:], data_shape[1] if len(patch) == 2 else 1)
    reference = SpatialTransform(
        patch, patch_center_dist_from_border=None, do_elastic_deform=False, do_rotation=True, angle_x=ANGLES,
        angle_y=ANGLES, angle_z=ANGLES, p_rot_per_axis=1, do_scale=True, scale=(0.7, 1.4),
        border_mode_data="constant", border_cval_data=0, order_data=1, border_mode_seg="constant",
        border_cval_seg=-1, order_seg=1, random_crop=False, p_scale_per_sample=0.7, p_rot_per_sample=0.7)
    ours = AffineSpatialTransform(patch, ANGLES, ANGLES, ANGLES, (0.7, 1.4), 0.7, 0.7, border_cval_seg=-1)
    resampled = 0
    for seed in range(6):
        np.random.seed(seed)
        expected = reference(data=data.copy(), seg=seg.copy())
        np.random.seed(seed)
        got = ours(data=data.copy(), seg=seg.copy())
        assert got["data"].shape == expected["data"].shape == (2, data_shape[1]) + patch
        np.testing.assert_allclose(got["data"], expected["data"], atol=1e-4)
        np.testing.assert_array_equal(got["seg"], expected["seg"])
        assert set(np.unique(got["seg"])) <= set(np.unique(seg)) | {-1.0}
        crops = [np.array_equal(got["data"][b], _centre_crop(data[b], patch)) for b in range(2)]
        resampled += crops.count(False)
    assert resampled > 6  # most of the 12 samples were rotated and/or scaled, not just cropped


def _centre_crop(array: np.ndarray, patch: tuple[int, ...]) -> np.ndarray:
    lower = [(s - p) // 2 for s, p in zip(array.shape[1:], patch)]
    return array[(slice(None),) + tuple(slice(lo, lo + p) for lo, p in zip(lower, patch))]


def test_affine_spatial_without_changes_is_a_centre_crop():
    data = np.random.default_rng(0).normal(size=(2, 1, 30, 40, 50)).astype(np.float32)
    seg = organ_labels((30, 40, 50), 1)
    out = AffineSpatialTransform((20, 24, 30), ANGLES, ANGLES, ANGLES, (0.7, 1.4), 0, 0)(data=data, seg=seg)
    for b in range(2):
        np.testing.assert_array_equal(out["data"][b], _centre_crop(data[b], (20, 24, 30)))
        np.testing.assert_array_equal(out["seg"][b], _centre_crop(seg[b], (20, 24, 30)))


@pytest.mark.parametrize("data_shape,ignore_axes", [((3, 1, 12, 40, 36), (0,)), ((3, 2, 20, 33, 28), None)])
def test_low_resolution_equals_batchgenerators_at_linear_order(data_shape, ignore_axes):
    data = np.random.default_rng(0).normal(size=data_shape).astype(np.float32)
    reference = SimulateLowResolutionTransform(zoom_range=(0.5, 1), per_channel=True, p_per_channel=0.5,
                                               order_downsample=0, order_upsample=1, p_per_sample=0.6,
                                               ignore_axes=ignore_axes)
    ours = LowResolutionTransform((0.5, 1), p_per_sample=0.6, p_per_channel=0.5, ignore_axes=ignore_axes)
    changed = 0
    for seed in range(5):
        np.random.seed(seed)
        expected = reference(data=data.copy())["data"]
        np.random.seed(seed)
        got = ours(data=data.copy())["data"]
        # nearest-neighbour picks can differ where a source position is a float32/float64 rounding tie
        assert np.mean(np.abs(got - expected) > 1e-4) < 0.05  # a wrong upsampling differs in every changed channel
        changed += int(np.any(got != data))
    assert changed >= 3


@pytest.mark.parametrize("shape", [(12, 18, 20), (13, 9, 10), (25, 19, 21), (6, 5, 5)])
def test_downsample_labels_equals_resize_segmentation(shape):
    target = np.random.default_rng(2).integers(0, 5, size=(2, 1, 25, 37, 41)).astype(np.int16)
    expected = np.stack([resize_segmentation(target[b, 0], shape, order=0)[None] for b in range(2)])
    got = downsample_labels(target, shape)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, expected)


def test_training_pipeline_uses_the_torch_resampling():
    names = [type(t).__name__ for t in training_transforms((56, 192, 160), (0, 1, 2), [False], None, None).transforms]
    assert "AffineSpatialTransform" in names and "LowResolutionTransform" in names
    assert "SpatialTransform" not in names and "SimulateLowResolutionTransform" not in names
