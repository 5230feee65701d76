"""Resampling against the references nnU-Net uses: skimage `resize`, batchgenerators
`resize_segmentation`, and nnU-Net's separate-axis path (per-slice resize + map_coordinates)."""
from __future__ import annotations

import numpy as np
import pytest
from batchgenerators.augmentations.utils import resize_segmentation
from scipy.ndimage import gaussian_filter, map_coordinates
from skimage.transform import resize

from unetr_pp.preprocessing.resampling import (
    compute_new_shape,
    get_separate_z_axis,
    resample_data_or_seg,
    resample_to_spacing,
)


def _smooth_volume(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (gaussian_filter(rng.normal(size=shape), 1.5) * 100 + 20).astype(np.float32)


def _blob_seg(shape, seed=0):
    """Labels 0..3: three overlapping ellipsoids plus a few isolated voxels."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    seg = np.zeros(shape, dtype=np.int8)
    for label in (1, 2, 3):
        centre = rng.uniform(0.25, 0.75, 3) * np.array(shape)
        radii = rng.uniform(0.15, 0.3, 3) * np.array(shape)
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
        seg[inside] = label
    seg[tuple(rng.integers(0, s, 5) for s in shape)] = 2
    return seg


def _assert_seg_matches(ours, seg, new_shape):
    """Equal to batchgenerators `resize_segmentation(order=1)` except where its float64 scores tie.

    The reference breaks geometric ties (0.5/0.5) by float64 rounding noise (0.5000000000000002 vs
    0.4999999999999998); we resolve exact ties with the nearest-neighbour label instead.
    """
    ref = resize_segmentation(seg, new_shape, 1)
    differ = ours != ref
    assert differ.mean() <= 0.005
    for idx in map(tuple, np.argwhere(differ)):
        scores = {c: resize((seg == c).astype(float), new_shape, 1, mode="edge", anti_aliasing=False)[idx]
                  for c in (ours[idx], ref[idx])}
        assert abs(scores[ours[idx]] - scores[ref[idx]]) < 1e-9, (idx, scores)


def _reference_separate(volume, new_shape, axis, is_seg, order, order_z):
    """nnU-Net's resample_data_or_seg with do_separate_z, written out with skimage/batchgenerators."""
    fn = (lambda x, s: resize_segmentation(x, s, order)) if is_seg else (
        lambda x, s: resize(x.astype(float), s, order, mode="edge", anti_aliasing=False))
    plane = [n for a, n in enumerate(new_shape) if a != axis]
    slices = [fn(np.take(volume, i, axis=axis), plane) for i in range(volume.shape[axis])]
    here = np.stack(slices, axis=axis).astype(float)
    scale = np.array(here.shape, dtype=float) / np.array(new_shape)
    grid = np.mgrid[tuple(slice(0, n) for n in new_shape)].astype(float)
    coords = np.array([s * (g + 0.5) - 0.5 for s, g in zip(scale, grid)])
    return map_coordinates(here, coords, order=order_z, mode="nearest")


def test_compute_new_shape_rounds():
    assert compute_new_shape((10, 100, 101), (5.0, 0.7, 0.7), (2.5, 1.0, 1.0)) == (20, 70, 71)
    assert compute_new_shape((3, 3, 3), (1, 1, 1), (1, 1, 1)) == (3, 3, 3)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ((1.0, 1.0, 1.0), (1.5, 1.5, 1.5), None),
        ((5.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0),  # anisotropic current spacing -> its coarsest axis
        ((1.0, 1.0, 4.0), (1.0, 1.0, 1.0), 2),
        ((1.0, 1.0, 1.0), (1.0, 3.5, 1.0), 1),  # isotropic current, anisotropic target -> target axis
        ((0.24, 1.25, 1.25), (1.0, 1.0, 1.0), None),  # two coarsest axes: no single separate axis
        ((3.0, 1.0, 1.0), (1.0, 1.0, 1.0), None),  # ratio exactly 3 is not > 3
    ],
)
def test_get_separate_z_axis(old, new, expected):
    assert get_separate_z_axis(old, new) == expected


def test_get_separate_z_axis_threshold():
    assert get_separate_z_axis((2.5, 1, 1), (1, 1, 1), threshold=2.0) == 0


@pytest.mark.parametrize("new_shape", [(14, 20, 17), (7, 9, 11)])
def test_data_matches_skimage_resize(new_shape):
    data = np.stack([_smooth_volume((10, 13, 15), 1), _smooth_volume((10, 13, 15), 2) * 3])
    ours = resample_data_or_seg(data, new_shape, is_seg=False, axis=None, order=3)
    assert ours.dtype == np.float32 and ours.shape == (2, *new_shape)
    for c in range(2):
        ref = resize(data[c].astype(float), new_shape, 3, mode="edge", anti_aliasing=False)
        np.testing.assert_allclose(ours[c], ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("new_shape", [(15, 20, 22), (6, 8, 9), (20, 26, 30)])
def test_seg_matches_batchgenerators(new_shape):
    seg = _blob_seg((12, 16, 18))[None]
    ours = resample_data_or_seg(seg, new_shape, is_seg=True, axis=None, order=1)
    assert ours.dtype == seg.dtype and ours.shape == (1, *new_shape)
    assert set(np.unique(ours)) <= set(np.unique(seg))
    _assert_seg_matches(ours[0], seg[0], new_shape)


def test_seg_with_minus_one_label():
    seg = _blob_seg((10, 12, 12), 3)
    seg[:, :2] = -1
    ours = resample_data_or_seg(seg[None], (15, 18, 18), True, None, 1)[0]
    _assert_seg_matches(ours, seg, (15, 18, 18))


@pytest.mark.parametrize("is_seg", [False, True])
def test_separate_axis_matches_nnunet_path(is_seg):
    shape, new_shape = (6, 14, 15), (15, 20, 11)
    volume = _blob_seg(shape, 4) if is_seg else _smooth_volume(shape, 5)
    ours = resample_data_or_seg(volume[None], new_shape, is_seg, axis=0, order=1 if is_seg else 3, order_z=0)[0]
    ref = _reference_separate(volume, new_shape, 0, is_seg, 1 if is_seg else 3, 0)
    if is_seg:
        assert np.mean(ours == ref) >= 0.99
        assert np.array_equal(np.unique(ours), np.unique(volume))
    else:
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)


def test_separate_axis_last_axis_and_linear_z():
    volume = _smooth_volume((14, 15, 5), 6)
    ours = resample_data_or_seg(volume[None], (10, 19, 12), False, axis=2, order=3, order_z=1)[0]
    ref = _reference_separate(volume, (10, 19, 12), 2, False, 3, 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)


def test_resample_to_spacing_picks_axis_and_shape():
    volume = _smooth_volume((5, 12, 12), 7)[None]
    ours = resample_to_spacing(volume, (4.0, 1.0, 1.0), (2.0, 1.5, 1.5), is_seg=False, order=3)
    assert ours.shape == (1, 10, 8, 8)
    ref = _reference_separate(volume[0], (10, 8, 8), 0, False, 3, 0)
    np.testing.assert_allclose(ours[0], ref, rtol=1e-5, atol=1e-3)
    same = resample_to_spacing(volume, (4.0, 1.0, 1.0), (4.0, 1.0, 1.0), is_seg=False, order=3)
    np.testing.assert_array_equal(same, volume)
    shaped = resample_to_spacing(volume, (4.0, 1.0, 1.0), (2.0, 1.5, 1.5), False, 3, new_shape=(9, 8, 8))
    assert shaped.shape == (1, 9, 8, 8)


def test_seg_labels_touching_the_border_and_single_voxels():
    seg = np.zeros((8, 9, 10), dtype=np.int8)
    seg[0, 0, 0] = 1
    seg[-1, 3:6, -2:] = 2
    seg[4, 4, 4] = 3
    for new_shape in [(16, 18, 20), (12, 5, 13)]:
        ours = resample_data_or_seg(seg[None], new_shape, True, None, 1)[0]
        _assert_seg_matches(ours, seg, new_shape)


def test_data_stays_within_input_range():
    data = np.zeros((1, 6, 6, 6), dtype=np.float32)
    data[0, 3, 3, 3] = 1.0
    out = resample_data_or_seg(data, (13, 13, 13), False, None, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() > 0.5


def test_long_axes_use_a_banded_operator_with_the_same_result():
    from unetr_pp.preprocessing.resampling import _axis_operator

    operator = _axis_operator(300, 251, 3)
    assert operator.shape == (251, 300) and operator.nnz / 251 < 60  # dense would be 300 per row
    data = np.random.default_rng(3).normal(size=(3, 4, 300)).astype(np.float32)
    ours = resample_data_or_seg(data[None], (3, 4, 251), is_seg=False, axis=None, order=3)[0]
    for plane in range(3):
        ref = resize(data[plane].astype(float), (4, 251), 3, mode="edge", anti_aliasing=False)
        np.testing.assert_allclose(ours[plane], ref, rtol=1e-5, atol=1e-5)
