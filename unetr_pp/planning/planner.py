"""Experiment planner (the rules of nnU-Net v2's `ExperimentPlanner`, nnunetv2/experiment_planning) -> Plans.

Output follows docs/architecture.md "Plans"; spacing, patch, shapes and kernels of a configuration are
in the transposed axis order (lowest resolution axis first).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from unetr_pp.io import DatasetInfo
from unetr_pp.io.plans import Plans
from unetr_pp.planning.topology import feature_map_size, get_pool_and_conv_props
from unetr_pp.preprocessing.normalization import USES_MASK, scheme_for_channel
from unetr_pp.preprocessing.resampling import ANISOTROPY_THRESHOLD, compute_new_shape
from unetr_pp.utilities.errors import UnetrPPError

INITIAL_PATCH_VOLUME = 256 ** 3
REFERENCE_FEATURE_MAP = 560_000_000  # nnU-Net v2 UNet_reference_val_3d: 8 GB at batch size 2
REFERENCE_BATCH_SIZE = 2
MIN_BATCH_SIZE = 2
MAX_DATASET_COVERED = 0.05
LOWRES_CREATION_THRESHOLD = 0.25
LOWRES_SPACING_STEP = 1.03
MASK_FOR_NORM_BELOW = 0.75
RESAMPLING = {"order_data": 3, "order_seg": 1, "order_z": 0, "separate_z_anisotropy_threshold": ANISOTROPY_THRESHOLD}


def target_spacing(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]],
                   threshold: float = ANISOTROPY_THRESHOLD) -> np.ndarray:
    """Per-axis median spacing; for a very anisotropic dataset the coarse axis gets its 10th percentile.

    Anisotropic means: coarsest median spacing > threshold x the next coarsest AND that axis' median size
    x threshold < the smallest other median size. The 10th percentile is never below the next coarsest
    spacing (then it becomes that spacing + 1e-5, as nnU-Net does).
    """
    spacings = np.asarray(spacings, dtype=float)
    target = np.percentile(spacings, 50, axis=0)
    median_size = np.percentile(np.asarray(shapes, dtype=float), 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    aniso_spacing = target[worst] > threshold * max(target[others])
    aniso_voxels = median_size[worst] * threshold < min(median_size[others])
    if aniso_spacing and aniso_voxels:
        value = np.percentile(spacings[:, worst], 10)
        if value < max(target[others]):
            value = max(max(target[others]), value) + 1e-5
        target[worst] = value
    return target


def transpose_for(spacing: Sequence[float]) -> tuple[list[int], list[int]]:
    """(transpose_forward, transpose_backward): the lowest resolution axis first, others in order."""
    worst = int(np.argmax(spacing))
    forward = [worst] + [i for i in range(len(spacing)) if i != worst]
    backward = [forward.index(i) for i in range(len(spacing))]
    return forward, backward


def plan_patch_and_batch(spacing: Sequence[float], median_shape: Sequence[float], dataset_voxels: float,
                         num_classes: int) -> dict:
    """Patch size, topology and batch size for one configuration (spacing/shape in transposed order)."""
    inverse = 1.0 / np.asarray(spacing, dtype=float)
    initial = [round(v) for v in inverse * (INITIAL_PATCH_VOLUME / np.prod(inverse)) ** (1 / 3)]
    initial = [min(i, m) for i, m in zip(initial, median_shape)]
    topo = get_pool_and_conv_props(spacing, initial)
    estimate = feature_map_size(topo.patch_size, topo.pool_op_kernel_sizes, num_classes)
    while estimate / REFERENCE_BATCH_SIZE * 2 > REFERENCE_FEATURE_MAP:
        ratios = [p / m for p, m in zip(topo.patch_size, median_shape)]
        axis = int(np.argsort(ratios)[-1])
        patch = list(topo.patch_size)
        trial = list(patch)
        trial[axis] -= topo.divisor[axis]
        patch[axis] -= get_pool_and_conv_props(spacing, trial).divisor[axis]
        topo = get_pool_and_conv_props(spacing, patch)
        estimate = feature_map_size(topo.patch_size, topo.pool_op_kernel_sizes, num_classes)
    batch = round(REFERENCE_FEATURE_MAP / estimate * REFERENCE_BATCH_SIZE)
    cap = round(dataset_voxels * MAX_DATASET_COVERED / np.prod(topo.patch_size, dtype=np.float64))
    batch = max(min(batch, cap), MIN_BATCH_SIZE)
    return {
        "patch_size": [int(v) for v in topo.patch_size],
        "batch_size": int(batch),
        "pool_op_kernel_sizes": [list(p) for p in topo.pool_op_kernel_sizes],
        "conv_kernel_sizes": [list(k) for k in topo.conv_kernel_sizes],
    }


def normalization_for(info: DatasetInfo, median_relative_size: float) -> tuple[list[str], list[bool]]:
    """Scheme per channel; z-score uses the nonzero mask when cropping left < 75 % of the median volume."""
    schemes = [scheme_for_channel(info.channel_names[c]) for c in sorted(info.channel_names)]
    use_mask = [USES_MASK[s] and median_relative_size < MASK_FOR_NORM_BELOW for s in schemes]
    return schemes, use_mask


def _configuration(identifier: str, spacing, median_shape, dataset_voxels, info, schemes, use_mask) -> dict:
    config = {"data_identifier": identifier, "spacing": [float(s) for s in spacing]}
    config.update(plan_patch_and_batch(spacing, median_shape, dataset_voxels, info.num_classes))
    config.update({
        "median_shape": [float(v) for v in median_shape],
        "normalization_schemes": schemes,
        "use_mask_for_norm": use_mask,
        "resampling": dict(RESAMPLING),
        "num_classes": info.num_classes,
        "num_input_channels": info.num_channels,
        "network_kwargs": {},
    })
    return config


def plan_experiment(fingerprint: dict, info: DatasetInfo, plans_identifier: str) -> Plans:
    """Plans for `3d_fullres` (always) and `3d_lowres` (nnU-Net v2 rule, see docs/preprocessing.md)."""
    spacings, shapes = fingerprint["spacings"], fingerprint["shapes_after_crop"]
    stats = fingerprint["foreground_intensity_properties_per_channel"]
    schemes, use_mask = normalization_for(info, fingerprint["median_relative_size_after_cropping"])
    for c, scheme in enumerate(schemes):
        if scheme == "CTNormalization" and not np.isfinite(stats[str(c)]["mean"]):
            raise UnetrPPError(f"{info.root}: channel {c} is CT but no training label has foreground voxels; "
                               "CT normalization needs foreground intensity statistics")
    fullres = target_spacing(spacings, shapes)
    forward, backward = transpose_for(fullres)
    new_shapes = [compute_new_shape(shape, spacing, fullres) for spacing, shape in zip(spacings, shapes)]
    median_shape = np.median(np.asarray(new_shapes, dtype=float), axis=0)[forward]
    spacing_t = fullres[forward]
    n_cases = len(shapes)
    dataset_voxels = float(np.prod(median_shape, dtype=np.float64) * n_cases)
    configs = {"3d_fullres": _configuration(f"{plans_identifier}_3d_fullres", spacing_t, median_shape,
                                            dataset_voxels, info, schemes, use_mask)}
    lowres = _plan_lowres(configs["3d_fullres"], median_shape, n_cases, info, schemes, use_mask, plans_identifier)
    if lowres is not None:
        configs["3d_lowres"] = lowres
    return Plans.from_json({
        "plans_identifier": plans_identifier,
        "dataset_name": info.name,
        "channel_names": {str(k): v for k, v in sorted(info.channel_names.items())},
        "labels": {str(k): v for k, v in sorted(info.labels.items())},
        "regions": info.regions,
        "regions_class_order": info.regions_class_order,
        "original_median_spacing": [float(v) for v in np.median(np.asarray(spacings, dtype=float), axis=0)],
        "original_median_shape": [float(v) for v in np.median(np.asarray(shapes, dtype=float), axis=0)],
        "transpose_forward": forward,
        "transpose_backward": backward,
        "foreground_intensity_properties_per_channel": stats,
        "preset": None,
        "overrides": {},
        "preset_splits": info.preset_splits,
        "configurations": configs,
    }, f"plans of {info.root}")


def _plan_lowres(fullres: dict, median_shape: np.ndarray, n_cases: int, info: DatasetInfo, schemes, use_mask,
                 plans_identifier: str) -> dict | None:
    """nnU-Net v2: grow the spacing by 3 % steps (anisotropic axes first) until the patch covers >= 25 % of
    the median image; keep the result only if it has < half the fullres voxels."""
    full_spacing = np.asarray(fullres["spacing"], dtype=float)
    median_voxels = float(np.prod(median_shape, dtype=np.float64))
    patch_voxels = float(np.prod(fullres["patch_size"], dtype=np.float64))
    spacing = full_spacing.copy()
    lowres = None
    while patch_voxels / median_voxels < LOWRES_CREATION_THRESHOLD:
        ratio = spacing.max() / spacing
        if np.any(ratio > 2):
            spacing[ratio > 2] *= LOWRES_SPACING_STEP
        else:
            spacing *= LOWRES_SPACING_STEP
        shape = full_spacing / spacing * median_shape
        median_voxels = float(np.prod(shape, dtype=np.float64))
        lowres = _configuration(f"{plans_identifier}_3d_lowres", spacing, [round(v) for v in shape],
                                median_voxels * n_cases, info, schemes, use_mask)
        patch_voxels = float(np.prod(lowres["patch_size"], dtype=np.float64))
    if lowres is None or np.prod(median_shape, dtype=np.float64) / median_voxels < 2:
        return None
    lowres["next_stage"] = "3d_fullres"
    return lowres
