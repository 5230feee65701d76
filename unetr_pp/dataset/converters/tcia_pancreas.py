"""TCIA Pancreas-CT (NIH): one DICOM series per patient + NIfTI labels `labelNNNN.nii.gz` -> a task folder."""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.cases import Case, Release, Scan, build_plan, numbered_files
from unetr_pp.dataset.converters.layout import list_subfolders
from unetr_pp.dataset.converters.task_writer import TaskPlan

PANCREAS_LABELS = {0: "background", 1: "pancreas"}
TCIA_LAYOUT = """\
  RAW/                                  the folder holding both downloads
    Pancreas-CT/PANCREAS_0001/<study>/<series>/1-001.dcm ...   one DICOM series per patient (NBIA download)
    TCIA_pancreas_labels-02-05-2017/label0001.nii.gz ...       labels 0 background, 1 pancreas"""

_PATIENT_RE = re.compile(r"^PANCREAS_(\d{4})$")
_LABEL_RE = re.compile(r"^label(\d{4})\.nii(\.gz)?$")


def _series_folders(patient: Path) -> list[Path]:
    """Folders under `patient` (any depth) that directly hold `.dcm` files."""
    return sorted({p.parent for p in patient.rglob("*.dcm") if not p.name.startswith(".")})


def _find(raw: Path, marker: re.Pattern, file_level: bool) -> Path | None:
    """`raw` or the sub-folder of `raw` whose entries match `marker` (folders, or files when `file_level`)."""
    for folder in [raw] + list_subfolders(raw):
        entries = folder.iterdir() if folder.is_dir() else []
        if any(marker.match(p.name) and (p.is_file() if file_level else p.is_dir()) for p in entries):
            return folder
    return None


def plan_tcia_pancreas(raw: Path, task_name: str) -> TaskPlan:
    """Patient `PANCREAS_NNNN` + `labelNNNN.nii.gz` -> training case `pancreas_NNNN` (image read from DICOM)."""
    scan = Scan()
    images_root, labels_root = _find(raw, _PATIENT_RE, False), _find(raw, _LABEL_RE, True)
    if images_root is None:
        scan.problems.append(f"{raw}: no Pancreas-CT/PANCREAS_NNNN/ patient folders found")
    if labels_root is None:
        scan.problems.append(f"{raw}: no folder with labelNNNN.nii.gz files found")
    series: dict[str, Path] = {}
    for patient in list_subfolders(images_root) if images_root else []:
        match = _PATIENT_RE.match(patient.name)
        if match is None:
            if patient != labels_root:
                scan.problems.append(f"{patient}: unexpected folder (expected PANCREAS_NNNN/)")
            continue
        folders = _series_folders(patient)
        if len(folders) != 1:
            scan.problems.append(f"{patient}: {len(folders)} folders with .dcm files, expected one series folder")
        else:
            series[match.group(1)] = folders[0]
    labels = numbered_files(labels_root, _LABEL_RE, scan.problems, "labelNNNN.nii.gz") if labels_root else {}
    for number in sorted(set(series) - set(labels)):
        scan.problems.append(f"{series[number]}: no matching label{number}.nii.gz")
    for number in sorted(set(labels) - set(series)):
        scan.problems.append(f"{labels[number]}: no matching PANCREAS_{number} DICOM series")
    for number in sorted(set(series) & set(labels)):
        scan.add(Case(f"pancreas_{number}", series[number], labels[number]))
    release = Release("tcia_pancreas", "TCIAPancreasCT", "NIH Pancreas-CT (TCIA): contrast CT, pancreas",
                      {0: "CT"}, PANCREAS_LABELS, "all-labels", TCIA_LAYOUT)
    return build_plan(release, raw, task_name, scan)
