"""Cropping (bbox, hole filling, -1 semantics, properties), normalization numbers, fingerprint statistics."""
from __future__ import annotations

import os

import numpy as np
import pytest

from unetr_pp.io import Geometry, load_dataset_json
from unetr_pp.preprocessing.cropping import create_nonzero_mask, crop_to_nonzero, crop_with_properties, get_bbox
from unetr_pp.preprocessing.fingerprint import (
    SEED,
    extract_fingerprint,
    foreground_samples,
    intensity_statistics,
    load_or_crop,
)
from unetr_pp.preprocessing.normalization import ct_normalize, normalize, scheme_for_channel, zscore_normalize

from prep_tasks import make_task


def _volume():
    data = np.zeros((2, 8, 10, 12), dtype=np.float32)
    data[0, 2:6, 3:8, 4:10] = 5.0
    data[0, 3:5, 4:7, 5:9] = 0.0  # a hole inside channel 0's box
    data[1, 1, 9, 11] = 1.0  # channel 1 extends the box
    seg = np.zeros((1, 8, 10, 12), dtype=np.int16)
    seg[0, 2:4, 3:5, 4:6] = 3
    seg[0, 0, 0, 0] = 0
    return data, seg


def test_nonzero_mask_fills_holes_and_uses_all_channels():
    data, _ = _volume()
    mask = create_nonzero_mask(data)
    assert mask[3, 5, 6]  # hole filled
    assert mask[1, 9, 11]
    assert get_bbox(mask) == [[1, 6], [3, 10], [4, 12]]


def test_crop_to_nonzero():
    data, seg = _volume()
    cropped, cseg, bbox = crop_to_nonzero(data, seg)
    assert bbox == [[1, 6], [3, 10], [4, 12]]
    np.testing.assert_array_equal(cropped, data[:, 1:6, 3:10, 4:12])
    assert cseg.dtype == np.int8 and cseg.shape == (1, 5, 7, 8)
    mask = create_nonzero_mask(data)[1:6, 3:10, 4:12]
    assert np.all(cseg[0][~mask] == -1)  # background outside the mask
    assert np.all(cseg[0][mask & (seg[0, 1:6, 3:10, 4:12] == 0)] == 0)
    assert np.count_nonzero(cseg == 3) == 2 * 2 * 2
    assert seg.min() == 0  # input untouched


def test_crop_without_seg_and_empty_image():
    data, _ = _volume()
    _, mask_seg, _ = crop_to_nonzero(data)
    assert set(np.unique(mask_seg)) == {-1, 0}
    empty = np.zeros((1, 4, 5, 6), dtype=np.float32)
    cropped, _, bbox = crop_to_nonzero(empty)
    assert bbox == [[0, 4], [0, 5], [0, 6]] and cropped.shape == (1, 4, 5, 6)


def test_crop_properties():
    data, seg = _volume()
    geometry = Geometry((2.0, 1.0, 0.5), (1.0, 2.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    _, _, props = crop_with_properties("c1", data, geometry, seg)
    assert props == {"case_id": "c1", "geometry": geometry.to_json(), "original_shape": [8, 10, 12],
                     "bbox": [[1, 6], [3, 10], [4, 12]], "shape_after_cropping": [5, 7, 8],
                     "original_spacing": [2.0, 1.0, 0.5]}


def test_ct_normalization_numbers():
    image = np.array([[[-2000.0, 0.0, 50.0, 3000.0]]], dtype=np.float32)
    props = {"mean": 40.0, "std": 20.0, "percentile_00_5": -100.0, "percentile_99_5": 200.0}
    np.testing.assert_allclose(ct_normalize(image, props)[0, 0], [-7.0, -2.0, 0.5, 8.0])


def test_zscore_normalization_with_and_without_mask():
    image = np.array([[[0.0, 0.0, 1.0, 3.0]]], dtype=np.float32)
    np.testing.assert_allclose(zscore_normalize(image, None), (image - 1.0) / np.sqrt(1.5), rtol=1e-6)
    mask = image > 0
    out = zscore_normalize(image, mask)
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, -1.0, 1.0], rtol=1e-6)  # mean 2, std 1 inside


def test_normalize_dispatch_and_mask_from_seg():
    data = np.stack([np.full((2, 2, 2), 7.0), np.arange(8.0).reshape(2, 2, 2)]).astype(np.float32)
    seg = np.zeros((1, 2, 2, 2), dtype=np.int8)
    seg[0, 0] = -1
    props = {"0": {"mean": 5.0, "std": 2.0, "percentile_00_5": 0.0, "percentile_99_5": 6.0}}
    out = normalize(data, seg, ["CTNormalization", "ZScoreNormalization"], [False, True], props)
    np.testing.assert_allclose(out[0], 0.5)  # clipped to 6 -> (6 - 5) / 2
    inside = np.arange(4.0, 8.0)
    np.testing.assert_allclose(out[1, 1].ravel(), (inside - inside.mean()) / inside.std(), rtol=1e-6)
    np.testing.assert_allclose(out[1, 0].ravel(), [0, 1, 2, 3])  # outside the mask: unchanged
    assert scheme_for_channel("ct") == "CTNormalization" and scheme_for_channel("T2") == "ZScoreNormalization"


def test_foreground_samples_follow_nnunet_v2():
    data = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    seg = np.zeros((1, 2, 3, 4), dtype=np.int8)
    seg[0, 1] = 2
    samples = foreground_samples(data, seg, 50)[0]
    expected = np.random.RandomState(SEED).choice(np.arange(12, 24, dtype=np.float32), 50, replace=True)
    np.testing.assert_array_equal(samples, expected)
    stats = intensity_statistics(np.array([1.0, 2.0, 3.0, 4.0]))
    assert stats["mean"] == 2.5 and stats["median"] == 2.5 and stats["min"] == 1 and stats["max"] == 4
    assert stats["std"] == pytest.approx(np.sqrt(1.25))
    assert stats["percentile_00_5"] == pytest.approx(1.015) and stats["percentile_99_5"] == pytest.approx(3.985)


def test_fingerprint_of_a_tiny_task(tmp_path):
    task = make_task(tmp_path, n_cases=2)
    info = load_dataset_json(task)
    fp = extract_fingerprint(info, tmp_path / "cropped", num_processes=1, num_samples=1000)
    assert fp["case_ids"] == ["case_000", "case_001"]
    assert fp["spacings"] == [[2.0, 1.0, 1.0], [2.5, 1.0, 1.0]]
    assert fp["shapes_before_crop"] == [[10, 24, 22], [11, 26, 23]]
    cropped = [load_or_crop(c, tmp_path / "cropped") for c in info.training_cases]
    assert fp["shapes_after_crop"] == [c.properties["shape_after_cropping"] for c in cropped]
    relative = [np.prod(a) / np.prod(b) for a, b in zip(fp["shapes_after_crop"], fp["shapes_before_crop"])]
    assert fp["median_relative_size_after_cropping"] == pytest.approx(np.median(relative))
    pooled = np.concatenate([foreground_samples(c.data, c.seg, 1000)[0] for c in cropped])
    assert fp["foreground_intensity_properties_per_channel"]["0"] == intensity_statistics(pooled)
    # all foreground voxels: the sampled mean is close to the exact one
    exact = np.concatenate([np.asarray(c.data)[0][np.asarray(c.seg)[0] > 0] for c in cropped])
    assert fp["foreground_intensity_properties_per_channel"]["0"]["mean"] == pytest.approx(exact.mean(), rel=0.05)


def test_cropped_cache_is_reused_until_the_raw_file_changes(tmp_path):
    task = make_task(tmp_path, n_cases=1)
    case = load_dataset_json(task).training_cases[0]
    first = load_or_crop(case, tmp_path / "cropped")
    mtime = (tmp_path / "cropped" / "case_000.npy").stat().st_mtime_ns
    again = load_or_crop(case, tmp_path / "cropped")
    assert isinstance(again.data, np.memmap)  # loaded from the cache
    np.testing.assert_array_equal(again.data, first.data)
    assert (tmp_path / "cropped" / "case_000.npy").stat().st_mtime_ns == mtime
    os.utime(case.label, ns=(1, 1))  # the raw label changed
    assert not isinstance(load_or_crop(case, tmp_path / "cropped").data, np.memmap)
