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
from typing import Iterator

import numpy as np

from unetr_pp.io import CaseFiles, DatasetInfo, read_case_channels, read_image
from unetr_pp.preprocessing.cropping import (
    OUTSIDE_MASK_LABEL, bbox_slices, crop_properties, cropped_nonzero_mask, seg_dtype,
)
from unetr_pp.preprocessing.parallel import map_cases
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json, save_npy, save_npy_chunks

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


def _read_label(case: CaseFiles, shape: tuple[int, ...]) -> np.ndarray:
    """The case's label (z, y, x) in its stored integer dtype (integral float labels are rounded)."""
    if case.label is None:
        raise UnetrPPError(f"case {case.case_id}: no label file")
    seg, _ = read_image(case.label)
    if seg.shape != shape:
        raise UnetrPPError(f"{case.label}: shape {seg.shape} differs from the image shape {shape}")
    if not np.issubdtype(seg.dtype, np.integer):
        rounded = np.round(seg)
        if not np.array_equal(rounded, seg):
            raise UnetrPPError(f"{case.label}: label values are not integers")
        seg = rounded.astype(np.int16)
    return seg


def _slab_chunks(array: np.ndarray, slab_voxels: int = 1 << 22) -> Iterator[np.ndarray]:
    """Consecutive slabs along axis 0 of `array`, each of about `slab_voxels` voxels."""
    step = max(1, slab_voxels // max(1, array[0].size))
    for start in range(0, array.shape[0], step):
        yield array[start:start + step]


def _crop_into_cache(case: CaseFiles, data_file: Path, seg_file: Path) -> dict:
    """Read, crop and write the case's cache files (data float32 (C, z, y, x), seg (1, z, y, x)); returns the
    crop properties. The channels stay in their stored dtype and are cast slab by slab while written."""
    channels, geometry = read_case_channels(case.images)
    label = _read_label(case, channels[0].shape)
    bbox, mask = cropped_nonzero_mask(channels)
    slicer = bbox_slices(bbox)
    seg = np.array(label[slicer], dtype=seg_dtype(label))
    del label
    seg[(seg == 0) & ~mask] = OUTSIDE_MASK_LABEL
    del mask
    cropped = [channel[slicer] for channel in channels]
    shape = (len(cropped),) + cropped[0].shape
    save_npy_chunks(data_file, shape, np.float32, (chunk for channel in cropped for chunk in _slab_chunks(channel)))
    save_npy(seg[None], seg_file)
    return crop_properties(case.case_id, geometry, channels[0].shape, bbox)


def cache_files(case: CaseFiles, cropped_folder: Path) -> tuple[Path, Path, Path]:
    """The case's cropped data, seg and properties files in `cropped_folder`."""
    name = case.case_id
    return cropped_folder / f"{name}.npy", cropped_folder / f"{name}_seg.npy", cropped_folder / f"{name}.json"


def ensure_cropped(case: CaseFiles, cropped_folder: Path) -> tuple[dict, bool]:
    """(crop properties, whether the cache was reused): crops into `cropped_folder` unless the case's cache
    files are there and its raw files are unchanged."""
    stamps = _file_stamps(case)
    data_file, seg_file, prop_file = cache_files(case, cropped_folder)
    if prop_file.is_file() and data_file.is_file() and seg_file.is_file():
        try:
            properties = load_json(prop_file)
        except UnetrPPError:  # a damaged cache entry is simply rebuilt
            properties = {}
        if properties.get("raw_files") == stamps:
            return properties, True
    properties = dict(_crop_into_cache(case, data_file, seg_file), raw_files=stamps)
    save_json(properties, prop_file)
    return properties, False


def load_or_crop(case: CaseFiles, cropped_folder: Path) -> CroppedCase:
    """Cropped case: memory-mapped from `cropped_folder` when its raw files are unchanged, else cropped,
    saved there and returned in memory."""
    properties, cached = ensure_cropped(case, cropped_folder)
    data_file, seg_file, _ = cache_files(case, cropped_folder)
    mode = "r" if cached else None
    return CroppedCase(np.load(data_file, mmap_mode=mode), np.load(seg_file, mmap_mode=mode), properties)


def flat_indices_of_nth_true(mask: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """Flat C-order index of the k-th True voxel of `mask` for each k in `ordinals` (in their order), i.e.
    `np.flatnonzero(mask)[ordinals]` without the index array of every True voxel (slab by slab along axis 0)."""
    ordinals = np.asarray(ordinals, dtype=np.int64)
    order = np.argsort(ordinals, kind="stable")
    wanted = ordinals[order]
    out = np.empty(len(ordinals), dtype=np.int64)
    per_slice = mask[0].size if mask.ndim > 1 else 1
    seen, start = 0, 0
    for slab in _slab_chunks(mask):
        hits = np.flatnonzero(slab)
        lo, hi = np.searchsorted(wanted, [seen, seen + len(hits)])
        out[order[lo:hi]] = hits[wanted[lo:hi] - seen] + start * per_slice
        seen += len(hits)
        start += slab.shape[0]
    return out


def foreground_samples(data: np.ndarray, seg: np.ndarray, num_samples: int = SAMPLES_PER_CASE) -> list[np.ndarray]:
    """Per channel `num_samples` foreground intensities (seg > 0) drawn with replacement, seed 1234
    (`RandomState(1234).choice(values, num_samples)`, drawn without gathering every foreground value)."""
    rng = np.random.RandomState(SEED)
    foreground = np.asarray(seg[0]) > 0
    count = int(np.count_nonzero(foreground))
    out = []
    for channel in data:
        if not count:
            out.append(np.empty(0, dtype=np.float64))
            continue
        flat = flat_indices_of_nth_true(foreground, rng.randint(0, count, size=num_samples))
        values = channel[np.unravel_index(flat, foreground.shape)]
        out.append(np.asarray(values).astype(np.float64))
    return out


@dataclass(frozen=True)
class _Job:
    case: CaseFiles
    cropped_folder: Path
    num_samples: int


def _analyze(job: _Job) -> dict:
    props, _ = ensure_cropped(job.case, job.cropped_folder)
    data_file, seg_file, _ = cache_files(job.case, job.cropped_folder)
    before, after = props["original_shape"], props["shape_after_cropping"]
    return {
        "spacing": props["original_spacing"],
        "shape_before_crop": before,
        "shape_after_crop": after,
        "relative_size": float(np.prod(after, dtype=np.float64) / np.prod(before, dtype=np.float64)),
        "samples": foreground_samples(np.load(data_file, mmap_mode="r"), np.load(seg_file, mmap_mode="r"),
                                      job.num_samples),
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


