"""Plans for an imported checkpoint: the seeds' own preprocessing (seed_plans.json), or a task's planned plans."""
from __future__ import annotations

from pathlib import Path

from unetr_pp.io.plans import Plans
from unetr_pp.paths import preprocessed_folder
from unetr_pp.planning.planner import RESAMPLING
from unetr_pp.planning.presets import merge_preset_and_overrides
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

SEED_PLANS = Path(__file__).with_name("seed_plans.json")
MONAI_AXES = [2, 1, 0]  # MONAI tensors are (x, y, z): our (z, y, x) arrays transposed
MONAI_LINEAR = 1
POOLINGS = 4  # the UX-Net family, UNETR and SwinUNETR need patches divisible by 16 (or 32)


def seed_datasets() -> dict:
    """The seed datasets of seed_plans.json by name."""
    return load_json(SEED_PLANS)["datasets"]


def seed_dataset_for(source: str, num_outputs: int, preset: str | None, path: Path) -> str:
    """The seed dataset: `preset` when given, else the one of `source` whose class count is `num_outputs`."""
    datasets = seed_datasets()
    mine = {name: d for name, d in datasets.items() if source in d["sources"]}
    if preset is not None:
        if preset not in mine:
            raise UnetrPPError(f"--preset {preset!r} is not a {source} dataset; choose one of {', '.join(mine)}")
        if mine[preset]["classes"] != num_outputs:
            raise UnetrPPError(f"{path}: --preset {preset} has {mine[preset]['classes']} outputs but the checkpoint's "
                               f"head has {num_outputs}; it was trained on another dataset")
        return preset
    fits = [name for name, d in mine.items() if d["classes"] == num_outputs]
    if len(fits) != 1:
        counts = ", ".join(f"{n}: {d['classes']}" for n, d in mine.items())
        raise UnetrPPError(f"{path}: a {source} checkpoint with {num_outputs} outputs matches no single seed dataset "
                           f"(outputs per dataset: {counts}); give --preset")
    return fits[0]


def seed_plans(dataset: str, network: str, network_kwargs: dict, in_channels: int, num_outputs: int,
               plans_identifier: str, patch: list[int] | None = None) -> Plans:
    """Plans reproducing the seed's MONAI preprocessing of `dataset` (x, y, z axis order, intensity window);
    `patch` overrides the seeds' 96^3 window (UNETR's position embedding fixes it)."""
    table = load_json(SEED_PLANS)
    entry = table["datasets"][dataset]
    spacing = entry["spacing_xyz"] or table["native_spacing_assumed"]
    low, high = entry["window"]
    window = {"mean": float(low), "std": float(high - low), "median": float(low), "min": float(low),
              "max": float(high), "percentile_00_5": float(low), "percentile_99_5": float(high)}
    patch = list(patch or table["patch_size"])
    config = {
        "data_identifier": f"{plans_identifier}_3d_fullres", "spacing": [float(s) for s in spacing],
        "patch_size": patch, "batch_size": 2, "median_shape": [float(p) for p in patch],
        "normalization_schemes": ["CTNormalization"] * in_channels, "use_mask_for_norm": [False] * in_channels,
        "resampling": {**RESAMPLING, "order_data": MONAI_LINEAR},
        "pool_op_kernel_sizes": [[2, 2, 2]] * POOLINGS, "conv_kernel_sizes": [[3, 3, 3]] * (POOLINGS + 1),
        "num_classes": num_outputs, "num_input_channels": in_channels,
        "network_kwargs": {network: network_kwargs},
    }
    return Plans.from_json({
        "plans_identifier": plans_identifier, "dataset_name": dataset,
        "channel_names": {str(c): "CT" for c in range(in_channels)},
        "labels": {"0": "background", **{str(c): f"label_{c}" for c in range(1, num_outputs)}},
        "regions": None, "regions_class_order": None,
        "original_median_spacing": [float(s) for s in spacing[::-1]],
        "original_median_shape": [float(p) for p in patch],
        "transpose_forward": MONAI_AXES, "transpose_backward": MONAI_AXES,
        "foreground_intensity_properties_per_channel": {str(c): dict(window) for c in range(in_channels)},
        "preset": dataset, "overrides": {}, "preset_splits": None,
        "configurations": {"3d_fullres": config},
    }, f"seed plans of {dataset}")


def task_plans(task: str, plans_identifier: str, preset: str, num_outputs: int) -> Plans:
    """The task's planned plans with `preset` applied (they give spacing and intensity statistics)."""
    try:
        path = preprocessed_folder() / task / f"{plans_identifier}.json"
    except UnetrPPError as err:
        raise UnetrPPError(f"no .model.pkl beside the checkpoint, so the plans come from the task: {err}") from None
    if not path.is_file():
        raise UnetrPPError(f"no .model.pkl beside the checkpoint and no plans {path}; create them with "
                           f"`unetr_pp_plan_and_preprocess -t {task} --preset {preset} --no_preprocessing` "
                           "(or put the official .model.pkl next to the .model file)")
    plans = Plans.load(path)
    if plans.preset != preset:  # as the preset trainers' prepare_plans do
        plans = merge_preset_and_overrides(plans, preset, []).replace(overrides=plans.overrides)
    config = plans.configuration("3d_fullres")
    if config.num_classes != num_outputs:
        raise UnetrPPError(f"{path}: plans give {config.num_classes} classes but the checkpoint's head has "
                           f"{num_outputs} outputs; the checkpoint belongs to another task")
    return plans
