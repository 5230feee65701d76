import json
import math

import numpy as np
import pytest
from medpy.metric.binary import dc, hd95
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from unetr_pp.evaluation import PROTOCOLS, compute_case_metrics, label_bounding_boxes
from unetr_pp.evaluation.surface import crop_box, hd95_cropped, surface_voxels
from unetr_pp.utilities.errors import UnetrPPError


def _random_mask(rng, shape, touch_border):
    """Union of 1-3 random boxes/ellipsoids with holes; several components; optionally on the border."""
    mask = np.zeros(shape, bool)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    for _ in range(rng.integers(1, 4)):
        centre = [rng.uniform(0, s) for s in shape]
        semi = [rng.uniform(0.6, max(1.0, s / 2.5)) for s in shape]
        if rng.random() < 0.5:
            mask |= sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, semi)) < 1
        else:
            mask[tuple(slice(int(max(0, c - a)), int(c + a) + 1) for c, a in zip(centre, semi))] = True
    mask &= rng.random(shape) > 0.08
    if touch_border:
        axis, side = rng.integers(0, 3), rng.integers(0, 2)
        index = [slice(None)] * 3
        index[axis] = -1 if side else 0
        mask[tuple(index)] |= rng.random(mask[tuple(index)].shape) > 0.5
    if not mask.any():
        mask[tuple(int(rng.integers(0, s)) for s in shape)] = True
    return mask


@pytest.mark.parametrize("seed", range(40))
def test_dice_and_hd95_equal_medpy_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(2, 28, size=3))
    spacing = tuple(float(s) for s in rng.uniform(0.2, 5.0, size=3))
    ref_mask = _random_mask(rng, shape, touch_border=seed % 2 == 0)
    pred_mask = _random_mask(rng, shape, touch_border=seed % 3 == 0)
    metrics = compute_case_metrics(ref_mask.astype(np.uint8), pred_mask.astype(np.uint8), spacing, [1])["label_1"]
    assert metrics["Dice"] == dc(pred_mask, ref_mask)
    assert metrics["HD95"] == hd95(pred_mask, ref_mask, voxelspacing=spacing)
    voxel = compute_case_metrics(ref_mask, pred_mask, spacing, [1], hd95_unit="voxel")["label_1"]
    assert voxel["HD95"] == hd95(pred_mask, ref_mask)
    tp = int((ref_mask & pred_mask).sum())
    assert (metrics["TP"], metrics["FP"], metrics["FN"]) == (tp, pred_mask.sum() - tp, ref_mask.sum() - tp)


def test_typical_isotropic_spacing_ties_match_medpy():
    # integer-lattice ties (3-4-5 offsets) with a non-representable spacing stress float tie-breaking
    rng = np.random.default_rng(7)
    for spacing in ((0.8, 0.8, 0.8), (3.0, 0.7421875, 0.7421875), (1.5, 1.5, 1.5)):
        ref_mask = _random_mask(rng, (20, 40, 40), touch_border=False)
        pred_mask = _random_mask(rng, (20, 40, 40), touch_border=True)
        metrics = compute_case_metrics(ref_mask, pred_mask, spacing, [1])["label_1"]
        assert metrics["HD95"] == hd95(pred_mask, ref_mask, voxelspacing=spacing)


def test_single_voxel_and_full_volume_masks():
    spacing = (2.0, 1.0, 0.5)
    ref = np.zeros((5, 6, 7), bool)
    pred = np.zeros_like(ref)
    ref[1, 1, 1] = True
    pred[1, 1, 3] = True
    metrics = compute_case_metrics(ref, pred, spacing, [1])["label_1"]
    assert metrics["Dice"] == 0.0 and metrics["HD95"] == 1.0  # 2 voxels along x at 0.5 mm
    assert compute_case_metrics(ref, pred, spacing, [1], hd95_unit="voxel")["label_1"]["HD95"] == 2.0
    assert compute_case_metrics(ref, ref, spacing, [1])["label_1"] == {
        "Dice": 1.0, "HD95": 0.0, "TP": 1, "FP": 0, "FN": 0, "n_ref": 1, "n_pred": 1,
        "vol_ref_ml": 0.001, "vol_pred_ml": 0.001,
    }
    full = np.ones_like(ref)
    corner = np.zeros_like(ref)
    corner[-1, -1, -1] = True
    for a, b in ((full, corner), (corner, full), (full, full), (full, pred)):
        metrics = compute_case_metrics(a, b, spacing, [1])["label_1"]
        assert metrics["HD95"] == hd95(b, a, voxelspacing=spacing)
        assert metrics["Dice"] == dc(b, a)


def test_surface_matches_medpy_erosion_with_background_border():
    rng = np.random.default_rng(3)
    for _ in range(10):
        mask = _random_mask(rng, tuple(int(s) for s in rng.integers(1, 12, size=3)), touch_border=True)
        expected = mask ^ binary_erosion(mask, structure=generate_binary_structure(3, 1), iterations=1)
        np.testing.assert_array_equal(surface_voxels(mask), expected)
    assert surface_voxels(np.ones((3, 3, 3), bool)).sum() == 26  # everything but the centre


def _placed_mask(rng, shape, at_border):
    """A random mask in a random sub-box (on an image face when `at_border`), so the crop is small."""
    size = [int(rng.integers(1, max(2, s // 2))) for s in shape]
    start = [int(rng.integers(0, s - n + 1)) for s, n in zip(shape, size)]
    if at_border:
        axis = int(rng.integers(0, 3))
        start[axis] = 0 if rng.random() < 0.5 else shape[axis] - size[axis]
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, a + n) for a, n in zip(start, size))] = _random_mask(rng, tuple(size), touch_border=at_border)
    return mask


def _uncropped_hd95(ref, pred, spacing):
    """Straightforward full-volume implementation (scipy erosion + full distance map)."""
    cross = generate_binary_structure(3, 1)
    ref_s, pred_s = ref ^ binary_erosion(ref, cross), pred ^ binary_erosion(pred, cross)
    d1 = distance_transform_edt(~ref_s, sampling=spacing)[pred_s]
    d2 = distance_transform_edt(~pred_s, sampling=spacing)[ref_s]
    return float(np.percentile(np.hstack((d1, d2)), 95))


@pytest.mark.parametrize("seed", range(12))
def test_crop_gives_the_uncropped_numbers(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(4, 20)), int(rng.integers(20, 40)), int(rng.integers(20, 40)))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 4.0, size=3))
    ref = _placed_mask(rng, shape, at_border=seed % 2 == 0)
    pred = _placed_mask(rng, shape, at_border=seed % 3 == 0) | _placed_mask(rng, shape, at_border=False)
    box = crop_box([label_bounding_boxes(ref)[1], label_bounding_boxes(pred)[1]], shape)
    assert ref[box].size < ref.size
    cropped = hd95_cropped(ref[box], pred[box], spacing)
    assert cropped == _uncropped_hd95(ref, pred, spacing)
    assert cropped == hd95_cropped(ref, pred, spacing)


def test_crop_box_margin_is_clipped_at_the_image_border():
    boxes = [(slice(0, 2), slice(3, 5), slice(7, 10)), (slice(1, 4), slice(4, 6), slice(8, 9))]
    assert crop_box(boxes, (4, 10, 10)) == (slice(0, 4), slice(2, 7), slice(6, 10))


def test_one_pass_bounding_boxes():
    volume = np.zeros((6, 7, 8), np.uint8)
    volume[1:3, 2:5, 0:1] = 2
    volume[5, 6, 7] = 9
    volume[0, 0, 0] = 2
    assert label_bounding_boxes(volume) == {
        2: (slice(0, 3), slice(0, 5), slice(0, 1)),
        9: (slice(5, 6), slice(6, 7), slice(7, 8)),
    }
    assert label_bounding_boxes(np.zeros((2, 2, 2), np.uint8)) == {}


@pytest.mark.parametrize(
    "empty, both, one",
    [("nan", (math.nan, math.nan), (0.0, math.nan)), ("unetrpp", (1.0, 0.0), (0.0, 0.0))],
)
def test_empty_mask_conventions(empty, both, one):
    ref = np.zeros((4, 5, 6), np.uint8)
    pred = np.zeros_like(ref)
    ref[1:3, 1:3, 1:3] = 1  # label 1: only in the reference
    pred[0, 0, 0] = 2  # label 2: only in the prediction
    ref[2, 4, 5] = pred[2, 4, 5] = 3  # label 3: both, identical
    metrics = compute_case_metrics(ref, pred, (1.0, 1.0, 1.0), [1, 2, 3, 4], empty=empty)

    def dice_hd(name):
        return metrics[name]["Dice"], metrics[name]["HD95"]

    np.testing.assert_equal(dice_hd("label_4"), both)
    np.testing.assert_equal(dice_hd("label_1"), one)
    np.testing.assert_equal(dice_hd("label_2"), one)
    assert dice_hd("label_3") == (1.0, 0.0)
    assert (metrics["label_1"]["FN"], metrics["label_1"]["FP"], metrics["label_2"]["FP"]) == (8, 0, 1)


def test_voxel_unit_and_volumes_in_ml():
    ref = np.zeros((10, 10, 10), np.uint8)
    pred = np.zeros_like(ref)
    ref[2, 5, 5] = 1
    pred[4, 5, 5] = 1
    spacing = (3.0, 0.8, 0.8)
    mm = compute_case_metrics(ref, pred, spacing, [1])["label_1"]
    voxel = compute_case_metrics(ref, pred, spacing, [1], hd95_unit="voxel")["label_1"]
    assert mm["HD95"] == 6.0 and voxel["HD95"] == 2.0
    assert mm["vol_ref_ml"] == pytest.approx(3.0 * 0.8 * 0.8 / 1000)


def test_brats_regions_equal_medpy_on_merged_masks():
    rng = np.random.default_rng(11)
    ref = rng.integers(0, 4, size=(12, 14, 16)).astype(np.uint8)
    pred = rng.integers(0, 4, size=(12, 14, 16)).astype(np.uint8)
    ref[:4] = 0
    spacing = (1.0, 1.2, 0.9)
    metrics = compute_case_metrics(ref, pred, spacing, PROTOCOLS["brats"].targets)
    assert list(metrics) == ["WT", "TC", "ET"]
    for name, ids in (("WT", [1, 2, 3]), ("TC", [2, 3]), ("ET", [3])):
        r, p = np.isin(ref, ids), np.isin(pred, ids)
        assert metrics[name]["Dice"] == dc(p, r)
        assert metrics[name]["HD95"] == hd95(p, r, voxelspacing=spacing)
        assert metrics[name]["n_ref"] == r.sum()


def test_input_errors():
    a = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(UnetrPPError, match="shape"):
        compute_case_metrics(a, np.zeros((3, 3, 4), np.uint8), (1, 1, 1), [1])
    with pytest.raises(UnetrPPError, match="integer label array"):
        compute_case_metrics(a, a.astype(np.float32), (1, 1, 1), [1])
    with pytest.raises(UnetrPPError, match="spacing"):
        compute_case_metrics(a, a, (1, 1), [1])
    with pytest.raises(UnetrPPError, match="HD95 unit"):
        compute_case_metrics(a, a, (1, 1, 1), [1], hd95_unit="cm")
    with pytest.raises(UnetrPPError, match="positive"):
        compute_case_metrics(a, a, (1, 1, 1), [0])


def test_threads_give_the_same_metrics_in_target_order():
    rng = np.random.default_rng(7)
    shape = (20, 30, 26)
    reference, prediction = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    for label in range(1, 9):
        reference[_random_mask(rng, shape, touch_border=False)] = label
        prediction[_random_mask(rng, shape, touch_border=label % 2 == 0)] = label
    targets = PROTOCOLS["synapse"].targets
    serial = compute_case_metrics(reference, prediction, (2.0, 0.7, 0.8), targets, threads=1)
    threaded = compute_case_metrics(reference, prediction, (2.0, 0.7, 0.8), targets, threads=3)
    assert list(threaded) == [t.name for t in targets]
    assert json.dumps(threaded) == json.dumps(serial)  # NaN (label 11 absent) compares equal as text
    ref_mask, pred_mask = reference == 6, prediction == 6  # the synapse protocol's liver
    assert threaded["liver"]["HD95"] == hd95(pred_mask, ref_mask, voxelspacing=(2.0, 0.7, 0.8))


def test_default_threads_are_the_usable_cores_at_most_one_per_target(monkeypatch):
    from unetr_pp.evaluation import metrics as metrics_module

    pools = []
    real_pool = metrics_module.ThreadPoolExecutor

    def recording_pool(workers):
        pools.append(workers)
        return real_pool(workers)

    monkeypatch.setattr(metrics_module, "ThreadPoolExecutor", recording_pool)
    reference = np.zeros((6, 8, 8), np.uint8)
    reference[1:4, 2:6, 2:6] = 1
    reference[4:6, 1:3, 1:3] = 2
    prediction = np.roll(reference, 1, axis=2)
    monkeypatch.setattr(metrics_module, "usable_cpus", lambda: 16)
    many = compute_case_metrics(reference, prediction, (1.0, 1.0, 1.0), [1, 2])
    monkeypatch.setattr(metrics_module, "usable_cpus", lambda: 1)
    one = compute_case_metrics(reference, prediction, (1.0, 1.0, 1.0), [1, 2])
    assert pools == [2, 2]  # 16 cores, 2 targets: the bounding boxes' pool, then the targets' pool
    assert many == one
    assert one["label_1"]["HD95"] == hd95(prediction == 1, reference == 1)
