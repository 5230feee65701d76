"""BraTS challenge folders -> Task003_tumor in the MSD Task01 / UNETR++ convention.

Channels FLAIR, T1, T1ce, T2 (`_0000` … `_0003`). Labels are renamed from the challenge's 1 NCR/NET,
2 edema, 4 enhancing to 1 edema, 2 non-enhancing tumour, 3 enhancing tumour (2->1, 1->2, 4->3); the
evaluation regions are WT = {1, 2, 3}, TC = {2, 3}, ET = {3}.
"""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.layout import (
    check_problems, check_same_grid, list_nifti, list_subfolders, read_3d_header,
)
from unetr_pp.dataset.converters.task_writer import TaskPlan, image_jobs, dataset_json_v1, label_job

MODALITIES = ("flair", "t1", "t1ce", "t2")
CHANNEL_NAMES = {0: "FLAIR", 1: "T1", 2: "T1ce", 3: "T2"}
TUMOR_LABELS = {0: "background", 1: "edema", 2: "non-enhancing tumor", 3: "enhancing tumour"}
LABEL_MAP = {0: 0, 1: 2, 2: 1, 4: 3}
REGIONS = {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}
EXPECTED_LAYOUT = """\
  RAW/                                  a BraTS data folder (e.g. MICCAI_BraTS2020_TrainingData)
    BraTS20_Training_001/
      BraTS20_Training_001_flair.nii.gz
      BraTS20_Training_001_t1.nii.gz
      BraTS20_Training_001_t1ce.nii.gz
      BraTS20_Training_001_t2.nii.gz
      BraTS20_Training_001_seg.nii.gz   labels 0, 1 NCR/NET, 2 edema, 4 enhancing
    BraTS20_Validation_001/ ...         a case folder without _seg becomes a test case (imagesTs)"""

_FILE_RE = re.compile(r"^.+_(flair|t1|t1ce|t2|seg)\.nii(\.gz)?$", re.IGNORECASE)


def _scan_case(folder: Path, problems: list[str], warnings: list[str]) -> dict[str, Path] | None:
    """{'flair', 't1', 't1ce', 't2'[, 'seg']: path} of one case folder, or None when it is unusable."""
    files: dict[str, Path] = {}
    for path in list_nifti(folder):
        match = _FILE_RE.match(path.name)
        if match is None:
            problems.append(f"{path}: unexpected file (expected {folder.name}_<flair|t1|t1ce|t2|seg>.nii.gz)")
            continue
        kind = match.group(1).lower()
        if kind in files:
            problems.append(f"{path}: second '{kind}' file next to {files[kind].name}")
        files[kind] = path
    missing = [m for m in MODALITIES if m not in files]
    if missing:
        problems.append(f"{folder}: missing {', '.join(f'_{m}' for m in missing)} image(s)")
        return None
    headers = {kind: read_3d_header(path, problems) for kind, path in files.items()}
    if headers["flair"] is not None:
        for kind, header in headers.items():
            if kind != "flair" and header is not None:
                check_same_grid(header, headers["flair"], problems, warnings)
    return files


def plan_brats(raw: Path, task_name: str) -> TaskPlan:
    """Case folders with `_seg` -> imagesTr/labelsTr (labels renamed), without -> imagesTs."""
    problems: list[str] = []
    warnings: list[str] = []
    folders = list_subfolders(raw)
    if not folders:
        problems.append(f"{raw}: no case folders")
    cases = {folder.name: _scan_case(folder, problems, warnings) for folder in folders}
    check_problems(raw, "brats", problems, EXPECTED_LAYOUT)
    training = [case for case, files in cases.items() if "seg" in files]
    testing = [case for case, files in cases.items() if "seg" not in files]
    if not training:
        check_problems(raw, "brats", [f"{raw}: no case folder has a _seg label file"], EXPECTED_LAYOUT)
    jobs = []
    for case, files in cases.items():
        folder = "imagesTr" if "seg" in files else "imagesTs"
        jobs += image_jobs(case, folder, [files[m] for m in MODALITIES])
        if "seg" in files:
            jobs.append(label_job(case, "labelsTr", files["seg"], set(LABEL_MAP), LABEL_MAP))
    dataset_json = dataset_json_v1(
        "BRATS", "Brain tumour segmentation (BraTS): multimodal MRI, gliomas", CHANNEL_NAMES, TUMOR_LABELS,
        training, testing,
        {"source": "brats", "raw_folder": str(raw.resolve()), "evaluation_protocol": "brats",
         "channel_order": [f"_{m}" for m in MODALITIES],
         "label_mapping": {str(k): v for k, v in LABEL_MAP.items()}, "regions": REGIONS},
    )
    return TaskPlan(task_name, dataset_json, jobs, warnings=warnings)
