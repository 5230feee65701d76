"""ACDC (cardiac cine MRI) raw release -> Task001_ACDC: one case per ED/ES frame, labels RV 1, Myo 2, LV 3."""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.layout import (
    check_pair, check_problems, descend, list_nifti, list_subfolders, read_3d_header, require_folder,
)
from unetr_pp.dataset.converters.task_writer import TaskPlan, image_jobs, dataset_json_v1, label_job

ACDC_LABELS = {0: "background", 1: "RV", 2: "Myo", 3: "LV"}
EXPECTED_LAYOUT = """\
  RAW/                                              the ACDC 'database' folder (or its parent)
    training/patient001/patient001_frame01.nii.gz     one image per ED/ES frame
    training/patient001/patient001_frame01_gt.nii.gz  its labels (0 background, 1 RV, 2 Myo, 3 LV)
    training/patient001/patient001_4d.nii.gz          ignored
    training/patient001/Info.cfg                      optional ('ED: 1', 'ES: 12')
    testing/patient101/...                            optional, same files; _gt files go to labelsTs"""

_PATIENT_RE = re.compile(r"^patient\d+$")
_FRAME_RE = re.compile(r"^(patient\d+)_frame(\d+)(_gt)?\.nii(\.gz)?$")
_FOUR_D_RE = re.compile(r"^patient\d+_4d\.nii(\.gz)?$")


def _read_info(path: Path, problems: list[str]) -> dict[int, str]:
    """Info.cfg -> {frame number: 'ED'/'ES'} ({} when the file is absent)."""
    if not path.is_file():
        return {}
    phases: dict[int, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("ED", "ES"):
            if not value.strip().isdigit():
                problems.append(f"{path}: {key.strip()} must be a frame number, got {value.strip()!r}")
                continue
            phases[int(value)] = key.strip()
    return phases


def _scan_patient(folder: Path, problems: list[str], warnings: list[str]) -> dict[str, dict]:
    """{case id: {'image', 'label' (or None), 'phase'}} for one patient folder."""
    frames: dict[str, dict] = {}
    for path in list_nifti(folder):
        if _FOUR_D_RE.match(path.name):
            continue
        match = _FRAME_RE.match(path.name)
        if match is None or match.group(1) != folder.name:
            problems.append(f"{path}: unexpected file (expected {folder.name}_frameNN.nii.gz and "
                            f"{folder.name}_frameNN_gt.nii.gz)")
            continue
        entry = frames.setdefault(f"{folder.name}_frame{match.group(2)}",
                                  {"image": None, "label": None, "frame": int(match.group(2))})
        entry["label" if match.group(3) else "image"] = path
    phases = _read_info(folder / "Info.cfg", problems)
    for frame, phase in sorted(phases.items()):
        if not any(entry["frame"] == frame for entry in frames.values()):
            warnings.append(f"{folder}: Info.cfg names {phase} frame {frame}, which has no image file")
    for case, entry in sorted(frames.items()):
        entry["phase"] = phases.get(entry["frame"])
        if entry["image"] is None:
            problems.append(f"{entry['label']}: no matching image {case}.nii.gz")
    if not frames:
        problems.append(f"{folder}: no {folder.name}_frameNN.nii.gz images")
    return {case: entry for case, entry in frames.items() if entry["image"] is not None}


def _scan(raw: Path, split: str, required: bool, problems: list[str], warnings: list[str]) -> dict[str, dict]:
    """All frames of `raw/split/patient*/`; training frames need their `_gt` label."""
    if not required and not (raw / split).exists():
        return {}
    cases: dict[str, dict] = {}
    for folder in list_subfolders(require_folder(raw, split, problems)):
        if not _PATIENT_RE.match(folder.name):
            problems.append(f"{folder}: unexpected folder (expected {split}/patientNNN/)")
            continue
        cases.update(_scan_patient(folder, problems, warnings))
    for case, entry in cases.items():
        if entry["label"] is not None:
            check_pair(entry["image"], entry["label"], problems, warnings)
        elif required:
            problems.append(f"{entry['image']}: no matching label {case}_gt.nii.gz")
        else:
            read_3d_header(entry["image"], problems)
    if required and (raw / split).is_dir() and not cases:
        problems.append(f"{raw / split}: no patientNNN/ folders with frames")
    return cases


def plan_acdc(raw: Path, task_name: str) -> TaskPlan:
    """ACDC: training frames -> imagesTr/labelsTr, testing frames -> imagesTs (+ labelsTs when `_gt` exist)."""
    raw = descend(raw, ("database", "ACDC/database"), "training")
    problems: list[str] = []
    warnings: list[str] = []
    training = _scan(raw, "training", True, problems, warnings)
    testing = _scan(raw, "testing", False, problems, warnings)
    for case in sorted(set(training) & set(testing)):
        problems.append(f"testing/: case {case} is also in training/")
    check_problems(raw, "acdc", problems, EXPECTED_LAYOUT)
    jobs = []
    for folders, cases in ((("imagesTr", "labelsTr"), training), (("imagesTs", "labelsTs"), testing)):
        for case, entry in cases.items():
            jobs += image_jobs(case, folders[0], [entry["image"]])
            if entry["label"] is not None:
                jobs.append(label_job(case, folders[1], entry["label"], set(ACDC_LABELS)))
    conversion = {
        "source": "acdc", "raw_folder": str(raw.resolve()), "evaluation_protocol": "acdc",
        "phases": {case: entry["phase"] for case, entry in {**training, **testing}.items()},
    }
    if any(entry["label"] is not None for entry in testing.values()):
        conversion["labels_test_folder"] = "labelsTs"
    dataset_json = dataset_json_v1(
        "ACDC", "Automated Cardiac Diagnosis Challenge: cine MRI, ED and ES frames", {0: "cineMRI"},
        ACDC_LABELS, list(training), list(testing), conversion,
    )
    return TaskPlan(task_name, dataset_json, jobs, warnings=warnings)
