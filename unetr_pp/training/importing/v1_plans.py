"""nnU-Net v1 / official UNETR++ `<checkpoint>.model.pkl` -> our plans (docs/architecture.md "Plans").

The pkl holds `init` (the trainer's constructor arguments: plans_file, fold, output_folder, dataset_directory,
batch_dice, stage, ...), `name` (trainer class), `class` and `plans` (the v1 plans: `plans_per_stage`,
`normalization_schemes`, `use_mask_for_norm`, `transpose_forward`, `dataset_properties.intensityproperties`,
`num_modalities`, `num_classes`, `all_classes`). The network configuration comes from the official one of the
trainer's dataset (its patch is fixed by the released weights).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from unetr_pp.io.plans import Plans
from unetr_pp.networks.official import official_plans_config
from unetr_pp.planning.planner import RESAMPLING
from unetr_pp.planning.topology import conv_kernels_for_pooling
from unetr_pp.utilities.errors import UnetrPPError

OFFICIAL_TRAINERS = {"unetr_pp_trainer_synapse": "synapse", "unetr_pp_trainer_acdc": "acdc",
                     "unetr_pp_trainer_lung": "lung", "unetr_pp_trainer_tumor": "tumor"}
V1_SCHEMES = {"CT": "CTNormalization", "CT2": "CTNormalization", "noNorm": "NoNormalization"}
V1_INTENSITY = {"mean": "mean", "sd": "std", "median": "median", "mn": "min", "mx": "max",
                "percentile_00_5": "percentile_00_5", "percentile_99_5": "percentile_99_5"}
STAGE_INDEX_IN_INIT = 5
OLD_INIT_LENGTH = 11


def read_model_pkl(path: Path) -> dict:
    """The pkl as a dict with 'init', 'name' and 'plans' (UnetrPPError naming the file otherwise)."""
    try:
        with open(path, "rb") as handle:
            info = pickle.load(handle)
    except Exception as err:  # pickle raises many types for a damaged file
        raise UnetrPPError(f"{path}: not a readable nnU-Net v1 .model.pkl ({type(err).__name__}: {err})") from None
    if not isinstance(info, dict) or not {"init", "name", "plans"} <= set(info):
        found = sorted(map(str, info))[:8] if isinstance(info, dict) else type(info).__name__
        raise UnetrPPError(f"{path}: expected an nnU-Net v1 .model.pkl with 'init', 'name' and 'plans' (found {found})")
    return info


def trainer_variant(info: dict, path: Path) -> str:
    """The official dataset (synapse | acdc | lung | tumor) of the pkl's trainer class."""
    name = str(info["name"])
    if name not in OFFICIAL_TRAINERS:
        raise UnetrPPError(f"{path}: trainer {name!r} is not an official UNETR++ trainer; expected one of "
                           f"{', '.join(OFFICIAL_TRAINERS)} (give --preset instead of the pkl for other files)")
    return OFFICIAL_TRAINERS[name]


def _stage(info: dict) -> int:
    init = list(info["init"])
    if len(init) == OLD_INIT_LENGTH:
        del init[2], init[-2]
    stage = init[STAGE_INDEX_IN_INIT] if len(init) > STAGE_INDEX_IN_INIT else None
    return 0 if stage is None else int(stage)


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float).reshape(-1)]


def _intensity(v1: dict) -> dict:
    return {str(int(c)): {ours: float(props[theirs]) for theirs, ours in V1_INTENSITY.items() if theirs in props}
            for c, props in v1.items()}


def convert_v1_plans(info: dict, path: Path, plans_identifier: str, num_outputs: int) -> Plans:
    """Our plans (one `3d_fullres` configuration) from the pkl; `num_outputs` = the checkpoint's head rows."""
    v1, variant = info["plans"], trainer_variant(info, path)
    try:
        stages = {int(k): v for k, v in v1["plans_per_stage"].items()}
        stage = stages[_stage(info)]
        channels = int(v1["num_modalities"])
        schemes = [V1_SCHEMES.get(str(v1["normalization_schemes"][c]), "ZScoreNormalization") for c in range(channels)]
        use_mask = [bool(v1["use_mask_for_norm"][c]) for c in range(channels)]
        classes = [int(c) for c in v1["all_classes"]]
        forward = [int(a) for a in v1["transpose_forward"]]
        intensity = _intensity(v1["dataset_properties"]["intensityproperties"])
        modalities = {str(int(k)): str(v) for k, v in v1.get("modalities", {}).items()}
    except (KeyError, TypeError, ValueError) as err:
        raise UnetrPPError(f"{path}: nnU-Net v1 plans lack or garble {err} (expected plans_per_stage, num_modalities, "
                           "normalization_schemes, use_mask_for_norm, all_classes, transpose_forward, "
                           "dataset_properties.intensityproperties)") from None
    if len(classes) + 1 != num_outputs:
        raise UnetrPPError(f"{path}: plans have {len(classes)} classes + background but the checkpoint's head has "
                           f"{num_outputs} outputs; the pkl belongs to another model")
    official = official_plans_config(variant, num_outputs)
    pools = official["pool_op_kernel_sizes"]
    spacing = _floats(stage["current_spacing"])
    config = {
        "data_identifier": f"{plans_identifier}_3d_fullres",
        "spacing": spacing,
        "patch_size": official["patch_size"],
        "batch_size": int(stage.get("batch_size", 2)),
        "median_shape": _floats(stage.get("median_patient_size_in_voxels", official["patch_size"])),
        "normalization_schemes": schemes,
        "use_mask_for_norm": use_mask,
        "resampling": dict(RESAMPLING),
        "pool_op_kernel_sizes": pools,
        "conv_kernel_sizes": [list(k) for k in conv_kernels_for_pooling(spacing, pools)],
        "num_classes": num_outputs,
        "num_input_channels": channels,
        "network_kwargs": official["network_kwargs"],
    }
    backward = [forward.index(i) for i in range(3)]
    return Plans.from_json({
        "plans_identifier": plans_identifier,
        "dataset_name": Path(str(info["init"][0])).parent.name or variant,
        "channel_names": modalities or {str(c): "CT" if n == "CTNormalization" else "MR"
                                        for c, n in enumerate(schemes)},
        "labels": {"0": "background", **{str(c): f"label_{c}" for c in classes}},
        "regions": None,
        "regions_class_order": None,
        "original_median_spacing": [spacing[backward[a]] for a in range(3)],
        "original_median_shape": [config["median_shape"][backward[a]] for a in range(3)],
        "transpose_forward": forward,
        "transpose_backward": backward,
        "foreground_intensity_properties_per_channel": intensity,
        "preset": variant,
        "overrides": {},
        "preset_splits": None,
        "configurations": {"3d_fullres": config},
    }, str(path))
