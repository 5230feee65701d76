"""Planner rules: against nnU-Net v2 2.8.1 itself (tests/data/planning, incl. the REFERENCE anchor run) and
hand-computed cases (target spacing, anisotropy rule and clamp, transpose, batch cap, normalization, lowres)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unetr_pp.io import DatasetInfo
from unetr_pp.planning.planner import (
    normalization_for,
    plan_experiment,
    plan_patch_and_batch,
    target_spacing,
    transpose_for,
)
from unetr_pp.planning.topology import feature_map_size, get_pool_and_conv_props
from unetr_pp.preprocessing.resampling import compute_new_shape
from unetr_pp.utilities.errors import UnetrPPError

REFERENCE = json.loads((Path(__file__).parent / "data" / "planning" / "nnunetv2_planner_reference.json").read_text())


def _info(channel_names=None, labels=None, num_cases=0):
    return DatasetInfo(root=Path("/nowhere"), name="Task999_X", format_version=1,
                       channel_names=channel_names or {0: "CT"}, labels=labels or {0: "background", 1: "a"},
                       file_ending=".nii.gz")


def _fingerprint(spacings, shapes, relative=1.0):
    stats = {"mean": 1.0, "std": 2.0, "median": 1.0, "min": 0.0, "max": 3.0,
             "percentile_00_5": 0.1, "percentile_99_5": 2.9}
    return {"spacings": spacings, "shapes_after_crop": shapes, "median_relative_size_after_cropping": relative,
            "foreground_intensity_properties_per_channel": {"0": stats}}


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["name"] for c in REFERENCE["cases"]])
def test_matches_nnunetv2_planner(case):
    fp, expected = case["fingerprint"], case["nnunetv2"]
    spacing = target_spacing(fp["spacings"], fp["shapes_after_crop"])
    forward, _ = transpose_for(spacing)
    new_shapes = [compute_new_shape(s, sp, spacing) for sp, s in zip(fp["spacings"], fp["shapes_after_crop"])]
    median = np.median(np.asarray(new_shapes, dtype=float), axis=0)[forward]
    plan = plan_patch_and_batch(spacing[forward], median, float(np.prod(median) * len(new_shapes)),
                                len(case["labels"]))
    assert forward == expected["transpose"]
    np.testing.assert_allclose(spacing[forward], expected["spacing"], rtol=1e-9)
    np.testing.assert_allclose(median, expected["median_shape"])
    assert plan["patch_size"] == expected["patch"]
    assert plan["batch_size"] == expected["batch"]
    assert plan["pool_op_kernel_sizes"] == expected["strides"][1:]  # v1 style: no leading [1, 1, 1]
    assert plan["conv_kernel_sizes"] == expected["kernels"]
    assert feature_map_size(expected["patch"], expected["strides"][1:], len(case["labels"])) == expected["fmap"]


def test_anchor_run_of_nnunet_v2():
    anchor = next(c for c in REFERENCE["cases"] if c["name"] == "anchor_brain_mri")
    fp = anchor["fingerprint"]
    plans = plan_experiment(_fingerprint(fp["spacings"], fp["shapes_after_crop"]),
                            _info({0: "T1"}, {0: "background", 1: "a", 2: "b"}), "p").to_json()
    config = plans["configurations"]["3d_fullres"]
    np.testing.assert_allclose(config["spacing"], [2.5, 1.183, 1.183])
    assert config["patch_size"] == [64, 192, 160]
    assert config["batch_size"] == 2
    assert len(config["conv_kernel_sizes"]) == 6 and config["conv_kernel_sizes"][0] == [1, 3, 3]


def test_target_spacing_is_the_median_when_isotropic_enough():
    spacings = [[1.0, 0.8, 0.8], [2.0, 0.7, 0.7], [1.5, 0.9, 0.9]]
    np.testing.assert_allclose(target_spacing(spacings, [[100, 200, 200]] * 3), [1.5, 0.8, 0.8])


def test_anisotropic_axis_uses_its_10th_percentile():
    # median z 5.0 > 3 * 1.0 and 20 * 3 < 200: z gets np.percentile([2, 5, 5, 5, 6], 10) = 3.2
    spacings = [[2.0, 1, 1], [5.0, 1, 1], [5.0, 1, 1], [5.0, 1, 1], [6.0, 1, 1]]
    np.testing.assert_allclose(target_spacing(spacings, [[20, 200, 200]] * 5), [3.2, 1, 1])


def test_anisotropic_rule_needs_few_voxels_on_that_axis():
    spacings = [[2.0, 1, 1], [5.0, 1, 1], [5.0, 1, 1], [5.0, 1, 1], [6.0, 1, 1]]
    # 70 * 3 >= 200: not anisotropic in voxels, the median stays
    np.testing.assert_allclose(target_spacing(spacings, [[70, 200, 200]] * 5), [5.0, 1, 1])


def test_anisotropic_10th_percentile_never_below_next_coarsest():
    spacings = [[4.0, 1.0, 0.9]] * 8 + [[0.5, 1.0, 0.9], [0.6, 1.0, 0.9]]
    target = target_spacing(spacings, [[20, 200, 200]] * 10)
    np.testing.assert_allclose(target, [1.0 + 1e-5, 1.0, 0.9])


def test_transpose_puts_lowest_resolution_axis_first():
    assert transpose_for([0.8, 0.8, 3.0]) == ([2, 0, 1], [1, 2, 0])
    assert transpose_for([1.0, 5.0, 1.0]) == ([1, 0, 2], [1, 0, 2])
    assert transpose_for([3.0, 1.0, 1.0]) == ([0, 1, 2], [0, 1, 2])


def test_plans_are_transposed():
    fp = _fingerprint([[0.8, 0.8, 3.0]] * 3, [[300, 280, 90]] * 3)
    plans = plan_experiment(fp, _info(), "p").to_json()
    assert plans["transpose_forward"] == [2, 0, 1] and plans["transpose_backward"] == [1, 2, 0]
    config = plans["configurations"]["3d_fullres"]
    assert config["spacing"] == [3.0, 0.8, 0.8]
    assert config["median_shape"] == [90.0, 300.0, 280.0]
    assert plans["original_median_spacing"] == [0.8, 0.8, 3.0]


def test_batch_size_capped_at_5_percent_of_dataset():
    # 48^3 patch: memory allows round(560e6 / 23556096 * 2) = 48; 100 cases * 48^3 * 0.05 / 48^3 = 5
    plan = plan_patch_and_batch([1, 1, 1], [48, 48, 48], 100 * 48 ** 3, 2)
    assert plan["patch_size"] == [48, 48, 48] and plan["batch_size"] == 5
    assert plan_patch_and_batch([1, 1, 1], [48, 48, 48], 1000 * 48 ** 3, 2)["batch_size"] == 48
    assert plan_patch_and_batch([1, 1, 1], [48, 48, 48], 2 * 48 ** 3, 2)["batch_size"] == 2  # never below 2


def test_topology_hand_computed():
    topo = get_pool_and_conv_props([3.0, 1.0, 1.0], [20, 64, 64])
    # z joins once the in-plane spacing has doubled (3 / 2 < 2), pools 20 -> 10 -> 5 and stops (5 < 2 * 4);
    # y/x pool 64 -> 32 -> 16 -> 8 -> 4; conv kernel on z is 1 until its spacing is within 2x of the finest
    assert topo.pool_op_kernel_sizes == ((1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    assert topo.conv_kernel_sizes == ((1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))
    assert topo.patch_size == (20, 64, 64) and topo.divisor == (4, 16, 16)
    assert get_pool_and_conv_props([1, 1, 1], [20, 30, 40]).patch_size == (20, 32, 40)  # divisor (4, 8, 8)


def test_normalization_rule():
    assert normalization_for(_info({0: "CT"}), 0.5) == (["CTNormalization"], [False])
    assert normalization_for(_info({0: "T1", 1: "ct"}), 0.5) == (["ZScoreNormalization", "CTNormalization"],
                                                                 [True, False])
    assert normalization_for(_info({0: "MRI"}), 0.8) == (["ZScoreNormalization"], [False])
    assert normalization_for(_info({0: "noNorm"}), 0.5) == (["NoNormalization"], [False])


def test_lowres_only_for_large_images():
    small = plan_experiment(_fingerprint([[1, 1, 1]] * 4, [[100, 120, 110]] * 4), _info(), "p").to_json()
    assert list(small["configurations"]) == ["3d_fullres"]
    large = plan_experiment(_fingerprint([[1, 1, 1]] * 4, [[400, 400, 400]] * 4), _info(), "p").to_json()
    low, full = large["configurations"]["3d_lowres"], large["configurations"]["3d_fullres"]
    assert low["next_stage"] == "3d_fullres" and low["data_identifier"] == "p_3d_lowres"
    assert all(a > b for a, b in zip(low["spacing"], full["spacing"]))
    # kept only when it has < half the fullres voxels, and grown until the patch covers >= 25 % of it
    assert np.prod(low["median_shape"]) * 2 <= np.prod(full["median_shape"])
    assert np.prod(low["patch_size"]) / np.prod(low["median_shape"]) >= 0.25


def test_plans_keys_follow_the_contract():
    plans = plan_experiment(_fingerprint([[2, 1, 1]] * 2, [[50, 60, 60]] * 2), _info(), "myplans").to_json()
    assert {"plans_identifier", "dataset_name", "channel_names", "labels", "regions", "regions_class_order",
            "original_median_spacing", "original_median_shape", "transpose_forward", "transpose_backward",
            "foreground_intensity_properties_per_channel", "preset", "overrides", "preset_splits",
            "configurations"} <= set(plans)
    config = plans["configurations"]["3d_fullres"]
    assert config["data_identifier"] == "myplans_3d_fullres"
    assert config["resampling"] == {"order_data": 3, "order_seg": 1, "order_z": 0,
                                    "separate_z_anisotropy_threshold": 3.0}
    assert config["num_classes"] == 2 and config["num_input_channels"] == 1
    assert plans["channel_names"] == {"0": "CT"} and plans["labels"] == {"0": "background", "1": "a"}


def test_ct_without_any_foreground_is_an_error():
    fp = _fingerprint([[1, 1, 1]] * 2, [[40, 40, 40]] * 2)
    fp["foreground_intensity_properties_per_channel"]["0"]["mean"] = float("nan")
    with pytest.raises(UnetrPPError, match="channel 0 is CT but no training label has foreground"):
        plan_experiment(fp, _info(), "p")
