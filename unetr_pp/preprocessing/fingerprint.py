"""Dataset fingerprint: read + crop every training case once (kept as .npy in the cropped folder) and
collect spacings, shapes and foreground intensity statistics -> `dataset_fingerprint.json`.

Intensity statistics follow nnU-Net v2: per case a fixed number of foreground voxels (seg > 0) is drawn
with replacement (`numpy.random.RandomState(1234)`, every case weighted equally) and mean, std,
median, min, max and the 0.5/99.5 percentiles are computed over the pooled samples. nnU-Net v2 draws
1e8 / n_cases samples per case; we draw 100,000 per case (a few MB instead of ~1 GB of samples; the
statistics agree to sampling noise).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unetr_pp.io import CaseFiles, DatasetInfo, read_case_images, read_image
from unetr_pp.preprocessing.cropping import crop_with_properties
from unetr_pp.preprocessing.parallel import map_cases
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json, save_npy

SAMPLES_PER_CASE = 100_000
SEED = 1234
PERCENTILES = (0.5, 50.0, 99.5)


@dataclass(frozen=True)
class CroppedCase:
    """A training case after cropping: data float32 (C, z, y, x), seg (1, z, y, x), crop properties."""

    data: np.ndarray
    seg: np.ndarray
    properties: dict


def _file_stamps(case: CaseFiles) -> dict[str, list[float]]:
    files = list(case.images) + ([case.label] if case.label else [])
    stamps = {}
    for path in files:
        try:
            stat = os.stat(path)
        except OSError as err:
            raise UnetrPPError(f"{path}: cannot read ({err.strerror})") from None
        stamps[str(path)] = [stat.st_size, stat.st_mtime]
    return stamps


def read_and_crop(case: CaseFiles) -> CroppedCase:
    """Read a case's images and label from the raw task and crop them to the nonzero region."""
    data, geometry = read_case_images(case.images)
    if case.label is None:
        raise UnetrPPError(f"case {case.case_id}: no label file")
    seg, _ = read_image(case.label)
    if seg.shape != data.shape[1:]:
        raise UnetrPPError(f"{case.label}: shape {seg.shape} differs from the image shape {data.shape[1:]}")
    if not np.issubdtype(seg.dtype, np.integer):
        rounded = np.round(seg)
        if not np.array_equal(rounded, seg):
            raise UnetrPPError(f"{case.label}: label values are not integers")
        seg = rounded
    return CroppedCase(*crop_with_properties(case.case_id, data, geometry, seg[None].astype(np.int16)))


def load_or_crop(case: CaseFiles, cropped_folder: Path) -> CroppedCase:
    """Cropped case from `cropped_folder` when it is there and its raw files are unchanged, else crop and save."""
    stamps = _file_stamps(case)
    prop_file = cropped_folder / f"{case.case_id}.json"
    data_file, seg_file = cropped_folder / f"{case.case_id}.npy", cropped_folder / f"{case.case_id}_seg.npy"
    if prop_file.is_file() and data_file.is_file() and seg_file.is_file():
        try:
            properties = load_json(prop_file)
        except UnetrPPError:  # a damaged cache entry is simply rebuilt
            properties = {}
        if properties.get("raw_files") == stamps:
            return CroppedCase(np.load(data_file, mmap_mode="r"), np.load(seg_file, mmap_mode="r"), properties)
    cropped = read_and_crop(case)
    properties = dict(cropped.properties, raw_files=stamps)
    save_npy(cropped.data, data_file)
    save_npy(cropped.seg, seg_file)
    save_json(properties, prop_file)
    return CroppedCase(cropped.data, cropped.seg, properties)


def foreground_samples(data: np.ndarray, seg: np.ndarray, num_samples: int = SAMPLES_PER_CASE) -> list[np.ndarray]:
    """Per channel `num_samples` foreground intensities (seg > 0) drawn with replacement, seed 1234."""
    rng = np.random.RandomState(SEED)
    foreground = seg[0] > 0
    out = []
    for channel in data:
        values = np.asarray(channel)[foreground]
        out.append(rng.choice(values, num_samples, replace=True).astype(np.float64) if values.size else
                   np.empty(0, dtype=np.float64))
    return out


@dataclass(frozen=True)
class _Job:
    case: CaseFiles
    cropped_folder: Path
    num_samples: int


def _analyze(job: _Job) -> dict:
    cropped = load_or_crop(job.case, job.cropped_folder)
    props = cropped.properties
    before, after = props["original_shape"], props["shape_after_cropping"]
    return {
        "spacing": props["original_spacing"],
        "shape_before_crop": before,
        "shape_after_crop": after,
        "relative_size": float(np.prod(after, dtype=np.float64) / np.prod(before, dtype=np.float64)),
        "samples": foreground_samples(cropped.data, cropped.seg, job.num_samples),
    }


def intensity_statistics(values: np.ndarray) -> dict:
    """mean, std, median, min, max, percentile_00_5, percentile_99_5 of a 1D sample (NaN when empty)."""
    if values.size == 0:
        return {k: float("nan") for k in ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")}
    low, median, high = np.percentile(values, PERCENTILES)
    return {
        "mean": float(values.mean()), "std": float(values.std()), "median": float(median),
        "min": float(values.min()), "max": float(values.max()),
        "percentile_00_5": float(low), "percentile_99_5": float(high),
    }


def extract_fingerprint(
    info: DatasetInfo, cropped_folder: Path, num_processes: int = 2, num_samples: int = SAMPLES_PER_CASE
) -> dict:
    """Crop every training case into `cropped_folder` and return the fingerprint dict (not yet saved)."""
    cropped_folder.mkdir(parents=True, exist_ok=True)
    cases = sorted(info.training_cases, key=lambda c: c.case_id)
    if not cases:
        raise UnetrPPError(f"{info.root}: no training cases")
    jobs = [_Job(case, cropped_folder, num_samples) for case in cases]
    results = map_cases(_analyze, jobs, num_processes, "crop + fingerprint", f"{info.root}: cannot read the cases")
    stats = {
        str(c): intensity_statistics(np.concatenate([r["samples"][c] for r in results]))
        for c in range(info.num_channels)
    }
    relative = [r["relative_size"] for r in results]
    return {
        "case_ids": [c.case_id for c in cases],
        "spacings": [r["spacing"] for r in results],
        "shapes_before_crop": [r["shape_before_crop"] for r in results],
        "shapes_after_crop": [r["shape_after_crop"] for r in results],
        "relative_sizes_after_cropping": relative,
        "median_relative_size_after_cropping": float(np.median(relative)),
        "foreground_intensity_properties_per_channel": stats,
        "intensity_sampling": {"samples_per_case": num_samples, "seed": SEED, "replace": True},
    }


