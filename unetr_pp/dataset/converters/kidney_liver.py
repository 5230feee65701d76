"""KiTS 2019 (case folders, slice-first NIfTI axes) and LiTS (volume-N / segmentation-N) -> task folders."""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.cases import Case, Release, Scan, build_plan
from unetr_pp.dataset.converters.layout import is_nifti, list_nifti, list_subfolders
from unetr_pp.dataset.converters.task_writer import TaskPlan

KITS_LABELS = {0: "background", 1: "kidney", 2: "tumor"}
LITS_LABELS = {0: "background", 1: "liver", 2: "tumor"}
KITS_ORIENTATION = "RAS"
KITS_LAYOUT = """\
  RAW/ = kits19/data/                   the KiTS 2019 data folder (after starter_code.get_imaging)
    case_00000/imaging.nii.gz           CT, NIfTI array [slices, rows, cols]
    case_00000/segmentation.nii.gz      labels 0 background, 1 kidney, 2 tumor
    case_00210/imaging.nii.gz           test cases: no segmentation
    kits.json                           (not read)"""
LITS_LAYOUT = """\
  RAW/                                  the LiTS release, flat or in batch folders
    Training Batch 1/volume-0.nii, segmentation-0.nii ...
    Training Batch 2/volume-28.nii, segmentation-28.nii ...
    Test Batch/test-volume-0.nii ...    optional, unlabelled (test cases)
  labels 0 background, 1 liver, 2 tumor"""

_KITS_CASE_RE = re.compile(r"^case_\d{5}$")
_KITS_FILES = {"imaging.nii.gz", "segmentation.nii.gz"}
_LITS_RE = re.compile(r"^(volume|segmentation|test-volume)-(\d+)\.nii(\.gz)?$")


def plan_kits19(raw: Path, task_name: str) -> TaskPlan:
    """KiTS19: `case_XXXXX` folders; cases without segmentation are test cases; reoriented to RAS."""
    if not any(_KITS_CASE_RE.match(p.name) for p in list_subfolders(raw)) and (raw / "data").is_dir():
        raw = raw / "data"
    scan = Scan()
    for folder in list_subfolders(raw):
        if not _KITS_CASE_RE.match(folder.name):
            scan.problems.append(f"{folder}: unexpected folder (expected case_NNNNN/)")
            continue
        for path in folder.iterdir():
            if is_nifti(path) and path.name not in _KITS_FILES:
                scan.problems.append(f"{path}: unexpected file (expected imaging.nii.gz, segmentation.nii.gz)")
        image, label = folder / "imaging.nii.gz", folder / "segmentation.nii.gz"
        if not image.is_file():
            scan.problems.append(f"{folder}: no imaging.nii.gz")
            continue
        scan.add(Case(folder.name, image, label if label.is_file() else None, test=not label.is_file()))
    if not scan.cases and not scan.problems:
        scan.problems.append(f"{raw}: no case_NNNNN/ folders")
    release = Release("kits19", "KiTS2019", "KiTS 2019 kidney tumour CT: kidney, tumor", {0: "CT"}, KITS_LABELS,
                      "kits", KITS_LAYOUT, orientation=KITS_ORIENTATION)
    return build_plan(release, raw, task_name, scan)


def _lits_files(raw: Path) -> list[Path]:
    """NIfTI files directly in `raw` and in its sub-folders (the batch folders)."""
    return list_nifti(raw) + [p for folder in list_subfolders(raw) for p in list_nifti(folder)]


def plan_lits(raw: Path, task_name: str) -> TaskPlan:
    """LiTS: `volume-N` + `segmentation-N` -> training case `lits_NNN`; `test-volume-N` -> test `lits_test_NNN`."""
    scan = Scan()
    found: dict[tuple[str, int], Path] = {}
    for path in _lits_files(raw):
        match = _LITS_RE.match(path.name)
        if match is None:
            scan.problems.append(f"{path}: unexpected file "
                                 f"(expected volume-N.nii, segmentation-N.nii, test-volume-N.nii)")
            continue
        key = (match.group(1), int(match.group(2)))
        if key in found:
            scan.problems.append(f"{path}: duplicate of {found[key]}")
        found[key] = path
    for (kind, number), path in sorted(found.items()):
        if kind == "volume":
            label = found.get(("segmentation", number))
            if label is None:
                scan.problems.append(f"{path}: no matching segmentation-{number}.nii")
            else:
                scan.add(Case(f"lits_{number:03d}", path, label))
        elif kind == "segmentation" and ("volume", number) not in found:
            scan.problems.append(f"{path}: no matching volume-{number}.nii")
        elif kind == "test-volume":
            scan.add(Case(f"lits_test_{number:03d}", path, None, test=True))
    release = Release("lits", "LiTS", "Liver Tumor Segmentation Challenge CT: liver, tumor", {0: "CT"}, LITS_LABELS,
                      "lits", LITS_LAYOUT)
    return build_plan(release, raw, task_name, scan)
