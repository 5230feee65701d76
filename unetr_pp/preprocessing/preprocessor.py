"""Per configuration: cropped case -> normalize -> transpose -> resample -> foreground locations -> files.

Writes `<case>.npy`, `<case>_seg.npy`, `<case>_fg.npz` and, last, `<case>.json` (each atomically) into
`<task folder>/<data_identifier>/`. A case is skipped when its four files exist and its properties
carry the signature of the current plans configuration (resumable; a changed plan redoes it).
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unetr_pp.io import CaseFiles
from unetr_pp.io.plans import Configuration, Plans, Resampling
from unetr_pp.preprocessing.cropping import OUTSIDE_MASK_LABEL
from unetr_pp.preprocessing.fingerprint import cache_files, ensure_cropped, flat_indices_of_nth_true
from unetr_pp.preprocessing.normalization import check_schemes, normalize_in_place
from unetr_pp.preprocessing.parallel import map_cases
from unetr_pp.preprocessing.resampling import (
    compute_new_shape, get_separate_z_axis, resample_data_or_seg, resample_volume,
)
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path, load_json, read_npy_owned, save_json, save_npy

MAX_LOCATIONS_PER_CLASS = 10_000
MIN_CLASS_COVERAGE = 0.01
SEED = 1234
CASE_FILES = ("{}.npy", "{}_seg.npy", "{}_fg.npz", "{}.json")


def configuration_signature(plans: Plans, configuration: str) -> str:
    """Hash of everything that determines a preprocessed case of `configuration`."""
    plans_json, config = plans.to_json(), plans.configuration(configuration).to_json()
    relevant = {
        **{key: plans_json[key] for key in ("transpose_forward", "labels")},
        "intensity": plans_json["foreground_intensity_properties_per_channel"],
        **{k: config[k] for k in ("spacing", "normalization_schemes", "use_mask_for_norm", "resampling")},
        **({"intensity_windows": config["intensity_windows"]} if "intensity_windows" in config else {}),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Geometry:
    """Where a cropped case goes in one configuration (transposed axes)."""

    forward: list[int]
    target: list[float]
    new_shape: tuple[int, ...]
    axis: int | None
    resampling: Resampling


def _target_geometry(cropped_shape, crop_properties: dict, plans: Plans, config: Configuration) -> _Geometry:
    forward = list(plans.transpose_forward)
    spacing = [crop_properties["original_spacing"][a] for a in forward]
    target = list(config.spacing)
    new_shape = compute_new_shape([cropped_shape[a] for a in forward], spacing, target)
    res = config.resampling
    return _Geometry(forward, target, new_shape, get_separate_z_axis(spacing, target,
                                                                     res.separate_z_anisotropy_threshold), res)


def _normalized_channel(data: np.ndarray, c: int, seg: np.ndarray, config: Configuration, plans: Plans,
                        forward: list[int]) -> np.ndarray:
    """Channel `c` of cropped data as a new float32 volume, normalized in place, transposed (a view)."""
    volume = read_npy_owned(data, c).astype(np.float32, copy=False)
    use_mask = config.use_mask_for_norm[c]
    normalize_in_place(volume, c, config.normalization_schemes[c], seg[0] >= 0 if use_mask else None,
                       plans.foreground_intensity_properties_per_channel, config.intensity_windows)
    return volume.transpose(forward)


def preprocess_data(data: np.ndarray, seg: np.ndarray, crop_properties: dict, plans: Plans,
                    configuration: str) -> tuple[np.ndarray, dict]:
    """Cropped data (C, z, y, x; may be memory-mapped) -> (float32 normalized, transposed, resampled, properties).

    `seg` (1, z, y, x, -1 outside the nonzero mask) gives the normalization mask. One channel at a time is
    read, normalized in place and resampled pass by pass, so about two channel volumes are alive at once.
    """
    config = plans.configuration(configuration)
    check_schemes(list(config.normalization_schemes), list(config.use_mask_for_norm), data.shape[0])
    geo = _target_geometry(data.shape[1:], crop_properties, plans, config)
    res = geo.resampling
    out = None
    for c in range(data.shape[0]):
        load = functools.partial(_normalized_channel, data, c, seg, config, plans, geo.forward)
        volume = resample_volume(load, geo.new_shape, geo.axis, res.order_data, res.order_z)
        if data.shape[0] == 1:
            out = volume[None]
        else:
            out = np.empty((data.shape[0],) + geo.new_shape, dtype=np.float32) if out is None else out
            out[c] = volume
        del volume
    return out, _case_properties(crop_properties, geo, any(config.use_mask_for_norm))


def preprocess_seg(seg: np.ndarray, crop_properties: dict, plans: Plans, configuration: str) -> np.ndarray:
    """Cropped seg (1, z, y, x, -1 outside the nonzero mask) -> transposed, resampled seg (same dtype).

    -1 is kept only when some channel normalizes inside the mask, else it becomes 0.
    """
    config = plans.configuration(configuration)
    geo = _target_geometry(seg.shape[1:], crop_properties, plans, config)
    seg = np.array(seg)
    if not any(config.use_mask_for_norm):
        seg[seg == OUTSIDE_MASK_LABEL] = 0
    seg = np.ascontiguousarray(seg.transpose([0] + [a + 1 for a in geo.forward]))
    return resample_data_or_seg(seg, geo.new_shape, True, geo.axis, geo.resampling.order_seg, 0)


def _case_properties(crop_properties: dict, geo: _Geometry, use_mask: bool) -> dict:
    properties = {
        key: crop_properties[key]
        for key in ("case_id", "geometry", "original_shape", "bbox", "shape_after_cropping", "original_spacing")
    }
    properties.update({
        "transpose_forward": geo.forward,
        "spacing_after_resampling": geo.target,
        "shape_after_resampling": list(geo.new_shape),
        "use_nonzero_mask": use_mask,
    })
    return properties


def class_locations(seg: np.ndarray, classes: list[int]) -> dict[int, np.ndarray]:
    """Per class up to 10,000 voxel indices (n, 3) of seg (1, z, y, x), at least 1 % of the class, seed 1234.

    Equal to `argwhere(seg[0] == c)[RandomState(1234).choice(n_c, n, replace=False)]` per class, without
    the (n_c, 3) index array of every voxel of the class.
    """
    rng = np.random.RandomState(SEED)
    out = {}
    for c in classes:
        mask = seg[0] == c
        count = int(np.count_nonzero(mask))
        if count == 0:
            out[c] = np.zeros((0, 3), dtype=np.int32)
            continue
        n = min(MAX_LOCATIONS_PER_CLASS, count)
        n = max(n, int(np.ceil(count * MIN_CLASS_COVERAGE)))
        flat = flat_indices_of_nth_true(mask, rng.choice(count, n, replace=False))
        out[c] = np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int32)
    return out


def case_is_done(folder: Path, case_id: str, signature: str) -> bool:
    """All four files exist and the properties were written for `signature`."""
    if not all((folder / pattern.format(case_id)).is_file() for pattern in CASE_FILES):
        return False
    try:
        return load_json(folder / f"{case_id}.json").get("signature") == signature
    except UnetrPPError:  # an unreadable properties file means: redo the case
        return False


@dataclass(frozen=True)
class _Job:
    case: CaseFiles
    cropped_folder: Path
    out_folder: Path
    plans: Plans
    configuration: str
    signature: str


def _write_case(folder: Path, case_id: str, seg, properties, locations) -> None:
    save_npy(seg, folder / f"{case_id}_seg.npy")
    with atomic_path(folder / f"{case_id}_fg.npz", suffix=".npz") as tmp:
        np.savez(tmp, **{f"class_{c}": v for c, v in locations.items()})
    save_json(properties, folder / f"{case_id}.json")


def _run_case(job: _Job) -> bool:
    """Preprocess one case from the cropped cache; the data is written (and freed) before the seg is resampled."""
    case_id = job.case.case_id
    if case_is_done(job.out_folder, case_id, job.signature):
        return False
    crop_properties, _ = ensure_cropped(job.case, job.cropped_folder)
    data_file, seg_file, _ = cache_files(job.case, job.cropped_folder)
    seg = read_npy_owned(np.load(seg_file, mmap_mode="r"))
    data, properties = preprocess_data(np.load(data_file, mmap_mode="r"), seg, crop_properties, job.plans,
                                       job.configuration)
    save_npy(data, job.out_folder / f"{case_id}.npy")
    del data
    seg = preprocess_seg(seg, crop_properties, job.plans, job.configuration)
    properties["signature"] = job.signature
    _write_case(job.out_folder, case_id, seg, properties, class_locations(seg, job.plans.foreground_classes))
    return True


def remove_stale_temp_files(folder: Path) -> None:
    """Delete hidden temp files left by a killed run (our atomic writes use `.<name>.*`)."""
    for path in folder.glob(".*"):
        if path.is_file():
            path.unlink()


def preprocess_configuration(
    cases: list[CaseFiles], cropped_folder: Path, task_folder: Path, plans: Plans, configuration: str,
    num_processes: int,
) -> int:
    """Preprocess every case for `configuration`; returns how many were (re)computed (the rest were done)."""
    out_folder = task_folder / plans.configuration(configuration).data_identifier
    out_folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_folder)
    signature = configuration_signature(plans, configuration)
    jobs = [_Job(c, cropped_folder, out_folder, plans, configuration, signature) for c in cases]
    done = map_cases(_run_case, jobs, num_processes, f"preprocess {configuration}",
                     f"preprocessing {configuration} failed")
    return sum(done)
