"""Presets (JSON data) and --override: values, re-derived topology, validation errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from unetr_pp.io import DatasetInfo
from unetr_pp.networks.official import official_plans_config
from unetr_pp.planning.planner import plan_experiment
from unetr_pp.experiment.plan_and_preprocess import apply_preset_and_overrides as apply_to_plans
from unetr_pp.planning.presets import available_presets, load_preset, parse_override
from unetr_pp.utilities.errors import UnetrPPError

SYNAPSE_TEST = ["img0001", "img0002", "img0003", "img0004", "img0008", "img0022", "img0025", "img0029",
                "img0032", "img0035", "img0036", "img0038"]


def apply_preset_and_overrides(plans, preset, overrides) -> dict:
    """The plans with the preset and overrides applied, as the JSON the assertions read."""
    return apply_to_plans(plans, preset, overrides).to_json()


@pytest.fixture(scope="module")
def plans():
    info = DatasetInfo(root=Path("/x"), name="Task002_Synapse", format_version=1, channel_names={0: "CT"},
                       labels={i: f"l{i}" for i in range(14)}, file_ending=".nii.gz")
    stats = {"mean": 0.0, "std": 1.0, "median": 0.0, "min": -1.0, "max": 1.0,
             "percentile_00_5": -1.0, "percentile_99_5": 1.0}
    fingerprint = {"spacings": [[3.0, 0.76, 0.76]] * 4, "shapes_after_crop": [[140, 512, 512]] * 4,
                   "median_relative_size_after_cropping": 1.0,
                   "foreground_intensity_properties_per_channel": {"0": stats}}
    return plan_experiment(fingerprint, info, "unetr_pp_Plansv2.1")


def test_available_presets():
    assert available_presets() == ["acdc", "amos", "btcv", "demo", "feta", "flare", "lung", "synapse", "tumor"]


@pytest.mark.parametrize("name", ["synapse", "acdc", "lung", "tumor"])
def test_official_presets_match_the_official_network_configs(name):
    preset = load_preset(name)["3d_fullres"]
    official = official_plans_config(name)
    assert preset["patch_size"] == official["patch_size"]
    assert preset["pool_op_kernel_sizes"] == official["pool_op_kernel_sizes"]
    assert preset["network_kwargs"] == official["network_kwargs"]


def test_synapse_preset_applied(plans):
    out = apply_preset_and_overrides(plans, "synapse", [])
    config = out["configurations"]["3d_fullres"]
    assert config["patch_size"] == [64, 128, 128] and config["batch_size"] == 2
    assert config["network_kwargs"] == {"unetr_pp": {"variant": "synapse", "stem_stride": [2, 4, 4]}}
    assert len(config["conv_kernel_sizes"]) == len(config["pool_op_kernel_sizes"]) + 1 == 6
    assert out["preset"] == "synapse" and out["preset_splits"] == {"0": {"val": SYNAPSE_TEST}}
    assert plans.preset is None  # the input is not modified


def test_acdc_batch_and_demo_preset(plans):
    assert apply_preset_and_overrides(plans, "acdc", [])["configurations"]["3d_fullres"]["batch_size"] == 4
    demo = apply_preset_and_overrides(plans, "demo", [])["configurations"]["3d_fullres"]
    assert demo["patch_size"] == [32, 64, 64]
    assert all(p % (8 * s) == 0 for p, s in zip(demo["patch_size"], demo["network_kwargs"]["unetr_pp"]["stem_stride"]))
    assert all(p % 32 == 0 for p in demo["patch_size"][1:])


def test_overrides_json_values_and_dotted_keys(plans):
    out = apply_preset_and_overrides(plans, "synapse", [
        "batch_size=4", "network_kwargs.unetr_pp.stem_stride=[1,4,4]", "patch_size=[32,128,128]"])
    config = out["configurations"]["3d_fullres"]
    assert config["batch_size"] == 4 and config["patch_size"] == [32, 128, 128]
    assert config["network_kwargs"]["unetr_pp"] == {"variant": "synapse", "stem_stride": [1, 4, 4]}
    assert out["overrides"] == {"batch_size": 4, "network_kwargs.unetr_pp.stem_stride": [1, 4, 4],
                                "patch_size": [32, 128, 128]}


def test_patch_override_rederives_topology(plans):
    config = apply_preset_and_overrides(plans, None, ["patch_size=[16,64,64]"])["configurations"]["3d_fullres"]
    stride = [1, 1, 1]
    for pool in config["pool_op_kernel_sizes"]:
        stride = [s * p for s, p in zip(stride, pool)]
    assert all(p % s == 0 for p, s in zip(config["patch_size"], stride))
    assert all(p // s >= 4 for p, s in zip(config["patch_size"], stride))
    assert len(config["conv_kernel_sizes"]) == len(config["pool_op_kernel_sizes"]) + 1


def test_parse_override():
    assert parse_override("patch_size=[1, 2, 3]") == ("patch_size", [1, 2, 3])
    assert parse_override("network_kwargs.unetr_pp.variant=acdc") == ("network_kwargs.unetr_pp.variant", "acdc")
    with pytest.raises(UnetrPPError, match="key=value"):
        parse_override("patch_size")


@pytest.mark.parametrize("overrides, message", [
    (["patch_size=[30,128,128]"], "not divisible by the total pooling stride"),
    (["batch_size=0"], "batch_size must be a positive integer"),
    (["batch_size=2.5"], "batch_size must be a positive integer"),
    (["spacing=[-1,1,1]"], "spacing must be 3 numbers > 0"),
    (["patch_size=[64,128]"], "patch_size must be 3 positive integers"),
    (["normalization_schemes=[\"Foo\"]"], "normalization_schemes must list one of"),
    (["patch_size=[32,128,128]", "network_kwargs.unetr_pp.stem_stride=[8,4,4]"], "UNETR++ total stride"),
])
def test_invalid_results_are_reported(plans, overrides, message):
    with pytest.raises(UnetrPPError, match=re.escape(message)):
        apply_preset_and_overrides(plans, "synapse" if "stem" in str(overrides) else None, overrides)


def test_unknown_override_key_and_preset(plans):
    with pytest.raises(UnetrPPError, match="unknown key 'pach_size'"):
        apply_preset_and_overrides(plans, None, ["pach_size=[1,2,3]"])
    with pytest.raises(UnetrPPError, match="unknown preset 'synapes'; available: acdc, amos, btcv, demo"):
        load_preset("synapes")


def test_several_problems_listed_together(plans):
    with pytest.raises(UnetrPPError) as err:
        apply_preset_and_overrides(plans, None, ["batch_size=-1", "spacing=[0,1,1]"])
    assert len(err.value.problems) == 2
