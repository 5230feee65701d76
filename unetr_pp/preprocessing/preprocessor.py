"""Per configuration: cropped case -> normalize -> transpose -> resample -> foreground locations -> files.

Writes `<case>.npy`, `<case>_seg.npy`, `<case>_fg.npz` and, last, `<case>.json` (each atomically) into
`<task folder>/<data_identifier>/`. A case is skipped when its four files exist and its properties
carry the signature of the current plans configuration (resumable; a changed plan redoes it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unetr_pp.io import CaseFiles
from unetr_pp.io.plans import Plans
from unetr_pp.preprocessing.cropping import OUTSIDE_MASK_LABEL
from unetr_pp.preprocessing.fingerprint import load_or_crop
from unetr_pp.preprocessing.normalization import normalize
from unetr_pp.preprocessing.parallel import map_cases
from unetr_pp.preprocessing.resampling import compute_new_shape, get_separate_z_axis, resample_data_or_seg
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path, load_json, save_json, save_npy

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
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def preprocess_arrays(
    data: np.ndarray, seg: np.ndarray, crop_properties: dict, plans: Plans, configuration: str,
    with_seg: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Cropped data (C, z, y, x) + seg (1, z, y, x, -1 outside the nonzero mask) -> preprocessed arrays.

    Returns float32 data and int8/int16 seg in the transposed, resampled grid and the case properties
    of docs/architecture.md. Seg keeps -1 only when some channel normalizes inside the mask; without
    `with_seg` (prediction: seg is only the nonzero mask) it is not resampled and None is returned.
    """
    config = plans.configuration(configuration)
    forward = list(plans.transpose_forward)
    data = normalize(np.asarray(data), seg, list(config.normalization_schemes), list(config.use_mask_for_norm),
                     plans.foreground_intensity_properties_per_channel)
    use_mask = any(config.use_mask_for_norm)
    seg = np.array(seg)
    if not use_mask:
        seg[seg == OUTSIDE_MASK_LABEL] = 0
    axes = [0] + [a + 1 for a in forward]
    data, seg = data.transpose(axes), seg.transpose(axes)
    spacing = [crop_properties["original_spacing"][a] for a in forward]
    target = list(config.spacing)
    new_shape = compute_new_shape(data.shape[1:], spacing, target)
    res = config.resampling
    axis = get_separate_z_axis(spacing, target, res.separate_z_anisotropy_threshold)
    data = resample_data_or_seg(np.ascontiguousarray(data), new_shape, False, axis, res.order_data, res.order_z)
    if with_seg:
        seg = resample_data_or_seg(np.ascontiguousarray(seg), new_shape, True, axis, res.order_seg, 0)
    properties = {
        key: crop_properties[key]
        for key in ("case_id", "geometry", "original_shape", "bbox", "shape_after_cropping", "original_spacing")
    }
    properties.update({
        "transpose_forward": forward,
        "spacing_after_resampling": target,
        "shape_after_resampling": list(new_shape),
        "use_nonzero_mask": use_mask,
    })
    return data, seg if with_seg else None, properties


def class_locations(seg: np.ndarray, classes: list[int]) -> dict[int, np.ndarray]:
    """Per class up to 10,000 voxel indices (n, 3) of seg (1, z, y, x), at least 1 % of the class, seed 1234."""
    rng = np.random.RandomState(SEED)
    out = {}
    for c in classes:
        where = np.argwhere(seg[0] == c).astype(np.int32)
        if len(where) == 0:
            out[c] = np.zeros((0, 3), dtype=np.int32)
            continue
        n = min(MAX_LOCATIONS_PER_CLASS, len(where))
        n = max(n, int(np.ceil(len(where) * MIN_CLASS_COVERAGE)))
        out[c] = where[rng.choice(len(where), n, replace=False)]
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


def _write_case(folder: Path, case_id: str, data, seg, properties, locations) -> None:
    save_npy(data, folder / f"{case_id}.npy")
    save_npy(seg, folder / f"{case_id}_seg.npy")
    with atomic_path(folder / f"{case_id}_fg.npz", suffix=".npz") as tmp:
        np.savez(tmp, **{f"class_{c}": v for c, v in locations.items()})
    save_json(properties, folder / f"{case_id}.json")


def _run_case(job: _Job) -> bool:
    case_id = job.case.case_id
    if case_is_done(job.out_folder, case_id, job.signature):
        return False
    cropped = load_or_crop(job.case, job.cropped_folder)
    data, seg, properties = preprocess_arrays(cropped.data, cropped.seg, cropped.properties, job.plans,
                                              job.configuration)
    properties["signature"] = job.signature
    _write_case(job.out_folder, case_id, data, seg, properties, class_locations(seg, job.plans.foreground_classes))
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
