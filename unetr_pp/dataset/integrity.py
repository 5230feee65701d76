"""Raw task integrity verification: every problem of a task folder in one report, nothing written.

Checks dataset.json (v1 and v2), that imagesTr holds every channel of every case and labelsTr its
label, that each file reads as a 3D image, that channels and label share shape and geometry, that
label values are declared, that images hold no NaN/inf, that numTraining matches, and that no stray
file sits in imagesTr/labelsTr. Cases are read in a process pool, each file once.
"""
from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import nibabel
import numpy as np

from unetr_pp.io import CaseFiles, DatasetInfo, Geometry, load_dataset_json, read_image
from unetr_pp.io.images import image_ending
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.parallel import default_workers, parallel_map

MAX_LISTED_VALUES = 20
BINCOUNT_CHUNK = 1 << 22
CHANNEL_SUFFIX = re.compile(r"_\d{4}$")
MSD_HINT = "an MSD task keeps all channels in one 4D file: convert it with `unetr_pp_convert_task --source msd`"


def default_num_processes() -> int:
    """Worker processes used when none are given: the usable CPUs, at most 8."""
    return default_workers(8)


def _format_values(values: Sequence[float]) -> str:
    shown = [f"{v:g}" for v in values[:MAX_LISTED_VALUES]]
    more = len(values) - len(shown)
    return "[" + ", ".join(shown) + (f", ... {more} more" if more > 0 else "") + "]"


def _geometry_problem(path: Path, geometry: Geometry, ref_path: Path, ref: Geometry) -> str | None:
    """One line naming each geometry field of `path` that differs from `ref_path`, with both values."""
    fields = geometry.mismatch(ref)
    if not fields:
        return None
    parts = []
    for field in fields:
        name = "spacing (z, y, x)" if field == "spacing" else field.replace("itk_", "") + " (ITK order)"
        ours = [round(v, 6) for v in getattr(geometry, field)]
        theirs = [round(v, 6) for v in getattr(ref, field)]
        parts.append(f"{name} {ours} differs from {theirs}")
    return f"{path}: {'; '.join(parts)} of {ref_path.name}"


def _read_3d(path: Path, problems: list[str]) -> tuple[np.ndarray, Geometry] | None:
    """Read one image; a read error or a non-3D image becomes a problem line (None returned)."""
    try:
        array, geometry = read_image(path)
    except UnetrPPError as err:
        problems.append(str(err))
        return None
    if array.ndim == 4:
        problems.append(f"{path}: image is 4D (array shape {array.shape}), expected 3D with one file "
                        f"per channel; {MSD_HINT}")
        return None
    if array.ndim != 3:
        problems.append(f"{path}: image is {array.ndim}D (array shape {array.shape}), expected 3D")
        return None
    return array, geometry


def _nonfinite_counts(path: Path, array: np.ndarray) -> tuple[int, int]:
    """(NaN, inf) voxel counts of a float image. SimpleITK reads NaN/inf in NIfTI files as 0, so
    float NIfTI voxel data is scanned a second time, unscaled, with nibabel."""
    if array.dtype.kind != "f":
        return 0, 0
    if image_ending(path) in (".nii", ".nii.gz"):
        try:
            array = np.asanyarray(nibabel.load(path).dataobj.get_unscaled())
        except Exception as err:  # SimpleITK read it, so this is unexpected: say so, never crash
            raise UnetrPPError(f"{path}: cannot scan voxel data for NaN/inf ({type(err).__name__}: {err})") from None
    return int(np.isnan(array).sum()), int(np.isinf(array).sum())


def _label_value_problems(path: Path, label: np.ndarray, allowed: frozenset[int]) -> list[str]:
    if label.dtype.kind == "f":
        finite = np.isfinite(label)
        if not finite.all() or np.any(label[finite] != np.round(label[finite])):
            return [f"{path}: label holds non-integer values (NaN, inf or fractions); labels must be integers"]
    if label.dtype.kind in "iub" and label.size and int(label.min()) >= 0 and int(label.max()) < 1 << 16:
        flat, counts = label.reshape(-1), np.zeros(int(label.max()) + 1, np.int64)
        for start in range(0, flat.size, BINCOUNT_CHUNK):  # chunks: bincount copies its input to int64
            counts += np.bincount(flat[start:start + BINCOUNT_CHUNK], minlength=counts.size)
        values = np.flatnonzero(counts)
    else:
        values = np.unique(label)
    unexpected = [int(v) for v in values if int(v) not in allowed]
    if not unexpected:
        return []
    return [f"{path}: label values {_format_values(unexpected)} are not declared in dataset.json "
            f"(declared: {_format_values(sorted(allowed))})"]


def _check_case(case: CaseFiles, label_values: frozenset[int]) -> list[str]:
    """Problems of one case, reading each existing channel and the label once (missing files are
    reported by `_file_problems`)."""
    problems: list[str] = []
    reference: tuple[Path, tuple[int, ...], Geometry] | None = None
    for path in case.images:
        read = _read_3d(path, problems) if path.is_file() else None
        if read is None:
            continue
        array, geometry = read
        try:
            n_nan, n_inf = _nonfinite_counts(path, array)
        except UnetrPPError as err:
            problems.append(str(err))
        else:
            if n_nan or n_inf:
                problems.append(f"{path}: image holds {n_nan} NaN and {n_inf} inf voxels")
        if reference is None:
            reference = (path, array.shape, geometry)
        elif array.shape != reference[1]:
            problems.append(f"{path}: shape {array.shape} differs from {reference[1]} of {reference[0].name}")
        else:
            problems.extend(filter(None, [_geometry_problem(path, geometry, reference[0], reference[2])]))
    if case.label is None or not case.label.is_file():
        return problems
    read = _read_3d(case.label, problems)
    if read is None or reference is None:
        return problems
    label, geometry = read
    if label.shape != reference[1]:
        problems.append(f"{case.label}: label shape {label.shape} differs from image shape {reference[1]} "
                        f"of {reference[0].name}")
        return problems
    problems.extend(filter(None, [_geometry_problem(case.label, geometry, reference[0], reference[2])]))
    problems.extend(_label_value_problems(case.label, label, label_values))
    return problems


def _listed(folder: Path) -> list[Path]:
    """Entries of `folder` except hidden ones (empty when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _missing_channel(info: DatasetInfo, case: CaseFiles, channel: int, path: Path, hinted: set[Path]) -> str:
    """The problem line of a missing channel file, with a hint when a v1 naming mix-up explains it."""
    line = f"{path}: missing channel {channel} ({info.channel_names.get(channel, '?')}) of case {case.case_id!r}"
    unsuffixed = path.parent / f"{case.case_id}{info.file_ending}"
    if not unsuffixed.is_file():
        return line
    hinted.add(unsuffixed)
    if CHANNEL_SUFFIX.search(case.case_id):
        return line + (f"; dataset.json names the channel file {unsuffixed.name} itself: v1 entries name the "
                       f"case without the channel suffix (./{unsuffixed.parent.name}/"
                       f"{CHANNEL_SUFFIX.sub('', case.case_id)}{info.file_ending})")
    return line + (f"; found {unsuffixed.name}: images must be named <case>_XXXX{info.file_ending}, one file "
                   f"per channel (rename a 3D image to {path.name}; {MSD_HINT})")


def _file_problems(info: DatasetInfo) -> list[str]:
    """Missing channels and labels, duplicate cases and stray files in imagesTr/labelsTr."""
    problems: list[str] = []
    hinted: set[Path] = set()
    counts = Counter(case.case_id for case in info.training_cases)
    for case_id in sorted(i for i, n in counts.items() if n > 1):
        problems.append(f"{info.root / 'dataset.json'}: case {case_id!r} is listed more than once in 'training'")
    check_labels = (info.root / "labelsTr").is_dir()
    for case in info.training_cases + info.test_cases:
        for channel, path in enumerate(case.images):
            if not path.is_file():
                problems.append(_missing_channel(info, case, channel, path, hinted))
        if check_labels and case.label is not None and not case.label.is_file():
            problems.append(f"{case.label}: missing label of case {case.case_id!r}")
    expected = {p for case in info.training_cases for p in case.images}
    for path in _listed(info.root / "imagesTr"):
        if path not in expected and path not in hinted:
            problems.append(f"{path}: stray file: belongs to no training case of dataset.json (expected "
                            f"<case>_XXXX{info.file_ending} for {info.num_channels} channel(s))")
    labels = {case.label for case in info.training_cases}
    for path in _listed(info.root / "labelsTr"):
        if path not in labels:
            problems.append(f"{path}: stray file: belongs to no training case of dataset.json "
                            f"(expected <case>{info.file_ending})")
    return problems


def _num_training_problem(info: DatasetInfo) -> str | None:
    declared = info.raw.get("numTraining")
    if declared is None:
        return None
    path = info.root / "dataset.json"
    if not isinstance(declared, int) or isinstance(declared, bool):
        return f"{path}: numTraining must be an integer, got {declared!r}"
    if info.format_version == 1:
        actual, how = len(info.raw.get("training", [])), "listed in 'training'"
    else:
        actual, how = len(info.training_cases), "found in imagesTr"
    if declared != actual:
        return f"{path}: numTraining is {declared} but {actual} training case(s) are {how}"
    return None


def _find(task_dir: str | Path, num_processes: int | None) -> tuple[list[str], DatasetInfo | None]:
    try:
        info = load_dataset_json(task_dir)
    except UnetrPPError as err:
        return (err.problems or [str(err)]), None
    problems: list[str] = []
    num_training = _num_training_problem(info)
    if num_training:
        problems.append(num_training)
    images_tr, labels_tr = info.root / "imagesTr", info.root / "labelsTr"
    if not images_tr.is_dir():
        return problems + [f"{images_tr}: folder not found (training images go here)"], info
    if not _listed(images_tr):
        return problems + [f"{images_tr}: folder is empty (no training images)"], info
    if not info.training_cases:
        problems.append(f"{images_tr}: no training cases found (images must be named <case>_0000{info.file_ending})")
    if not labels_tr.is_dir():
        problems.append(f"{labels_tr}: folder not found (training labels go here)")
    problems.extend(_file_problems(info))
    cases = list(dict.fromkeys(info.training_cases + info.test_cases))
    workers = default_num_processes() if num_processes is None else num_processes
    check = functools.partial(_check_case, label_values=frozenset(info.label_values))
    for found in parallel_map(check, cases, workers, desc="verifying cases", unit="case"):
        problems.extend(found)
    return problems, info


def find_integrity_problems(task_dir: str | Path, num_processes: int | None = None) -> list[str]:
    """Every problem of a raw task folder, one line each naming the file; [] when it is clean.

    Cases are read by `num_processes` worker processes (default: CPU count, at most 8; 1 = in-process).
    """
    return _find(task_dir, num_processes)[0]


def verify_dataset_integrity(task_dir: str | Path, num_processes: int | None = None) -> DatasetInfo:
    """Check a raw task folder -> its DatasetInfo; raise UnetrPPError listing all problems otherwise."""
    problems, info = _find(task_dir, num_processes)
    if problems or info is None:
        raise problems_error(f"{Path(task_dir)}: dataset integrity check failed", problems)
    return info
