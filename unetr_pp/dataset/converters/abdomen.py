"""AMOS 2022 and FLARE 2021 abdominal CT/MRI releases -> a task folder (docs/converters.md: sources of each fact)."""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.cases import Case, Release, Scan, apply_split_list, build_plan, numbered_files
from unetr_pp.dataset.converters.layout import descend, require_folder
from unetr_pp.dataset.converters.task_writer import TaskPlan
from unetr_pp.utilities.errors import UnetrPPError

AMOS_LABELS = {
    0: "background", 1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus",
    6: "liver", 7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "pancreas", 11: "right adrenal gland",
    12: "left adrenal gland", 13: "duodenum", 14: "bladder", 15: "prostate/uterus",
}
AMOS_MRI_FROM = 501
AMOS_MODALITIES = {"ct": "CT", "mri": "MRI", "all": "CT_MRI"}
FLARE_LABELS = {0: "background", 1: "liver", 2: "kidney", 3: "spleen", 4: "pancreas"}

AMOS_LAYOUT = """\
  RAW/ = amos22/                        the unpacked AMOS 2022 release
    dataset.json                        (not read: labels and split come from the folders)
    imagesTr/amos_0001.nii.gz ...       training images (ids <= 500 CT, > 500 MRI)
    labelsTr/amos_0001.nii.gz ...       labels 0-15
    imagesVa/amos_0008.nii.gz ...       official validation images
    labelsVa/amos_0008.nii.gz ...       their labels
    imagesTs/amos_0002.nii.gz ...       unlabelled test images (optional)"""
FLARE_LAYOUT = """\
  RAW/                                  the unpacked FLARE 2021 release
    TrainingImg/train_000_0000.nii.gz ...   361 CT volumes
    TrainingMask/train_000.nii.gz ...       labels 1 liver, 2 kidney, 3 spleen, 4 pancreas
    ValidationImg/validation_001_0000.nii.gz ...   optional, unlabelled (test cases)
    TestImg/test_001_0000.nii.gz ...               optional, unlabelled (test cases)"""

_AMOS_RE = re.compile(r"^amos_(\d{4})\.nii(\.gz)?$")


def _amos_wanted(number: str, modality: str) -> bool:
    is_mri = int(number) >= AMOS_MRI_FROM
    return modality == "all" or (modality == "mri") == is_mri


def _amos_pairs(raw: Path, split: str, modality: str, scan: Scan) -> list[str]:
    """Add the labelled cases of imagesXx/labelsXx -> their ids."""
    images = numbered_files(require_folder(raw, f"images{split}", scan.problems), _AMOS_RE, scan.problems,
                            "amos_NNNN.nii.gz")
    labels = numbered_files(require_folder(raw, f"labels{split}", scan.problems), _AMOS_RE, scan.problems,
                            "amos_NNNN.nii.gz")
    for number in sorted(set(images) ^ set(labels)):
        have, missing = (images, "labels") if number in images else (labels, "images")
        scan.problems.append(f"{have[number]}: no matching {missing}{split}/amos_{number}.nii.gz")
    ids = []
    for number in sorted(set(images) & set(labels)):
        if _amos_wanted(number, modality):
            scan.add(Case(f"amos_{number}", images[number], labels[number]))
            ids.append(f"amos_{number}")
    return ids


def plan_amos(raw: Path, task_name: str, modality: str = "ct", split_json: Path | None = None) -> TaskPlan:
    """AMOS 2022: Tr + Va cases for training (Va = fold 0 validation, the official split), Ts as test."""
    if modality not in AMOS_MODALITIES:
        raise UnetrPPError(f"--modality {modality!r}: choose one of {', '.join(AMOS_MODALITIES)}")
    raw = descend(raw, ("amos22", "AMOS22"), "imagesTr")
    scan = Scan()
    _amos_pairs(raw, "Tr", modality, scan)
    scan.val = _amos_pairs(raw, "Va", modality, scan)
    if (raw / "imagesTs").is_dir():
        tests = numbered_files(raw / "imagesTs", _AMOS_RE, scan.problems, "amos_NNNN.nii.gz")
        for number, path in sorted(tests.items()):
            if _amos_wanted(number, modality):
                scan.add(Case(f"amos_{number}", path, None, test=True))
    if split_json is not None:
        apply_split_list(scan, split_json, lambda name: name)
    release = Release("amos", "AMOS2022", "AMOS 2022 abdominal multi-organ CT/MRI, 15 organs",
                      {0: AMOS_MODALITIES[modality]}, AMOS_LABELS, "amos", AMOS_LAYOUT)
    return build_plan(release, raw, task_name, scan, {"modality_subset": modality,
                                                      "split_list": str(split_json) if split_json else None})


_FLARE_IMAGE_RE = re.compile(r"^(train_\d+)_0000\.nii(\.gz)?$")
_FLARE_MASK_RE = re.compile(r"^(train_\d+)\.nii(\.gz)?$")
_FLARE_TEST_RE = re.compile(r"^((?:validation|test)_\d+)_0000\.nii(\.gz)?$")


def plan_flare21(raw: Path, task_name: str, split_json: Path | None = None) -> TaskPlan:
    """FLARE 2021: TrainingImg/TrainingMask -> training (5-fold CV), ValidationImg/TestImg -> test."""
    raw = descend(raw, ("FLARE21", "FLARE2021"), "TrainingImg")
    scan = Scan()
    images = numbered_files(require_folder(raw, "TrainingImg", scan.problems), _FLARE_IMAGE_RE, scan.problems,
                            "train_NNN_0000.nii.gz")
    masks = numbered_files(require_folder(raw, "TrainingMask", scan.problems), _FLARE_MASK_RE, scan.problems,
                           "train_NNN.nii.gz")
    for case in sorted(set(images) - set(masks)):
        scan.problems.append(f"{images[case]}: no matching TrainingMask/{case}.nii.gz")
    for case in sorted(set(masks) - set(images)):
        scan.problems.append(f"{masks[case]}: no matching TrainingImg/{case}_0000.nii.gz")
    for case in sorted(set(images) & set(masks)):
        scan.add(Case(case, images[case], masks[case]))
    for folder in ("ValidationImg", "TestImg"):
        if (raw / folder).is_dir():
            for case, path in sorted(numbered_files(raw / folder, _FLARE_TEST_RE, scan.problems,
                                                    "validation_NNN_0000.nii.gz / test_NNN_0000.nii.gz").items()):
                scan.add(Case(case, path, None, test=True))
    if split_json is not None:
        apply_split_list(scan, split_json, lambda name: name)
    release = Release("flare21", "FLARE2021", "FLARE 2021 abdominal organ CT: liver, kidney, spleen, pancreas",
                      {0: "CT"}, FLARE_LABELS, "flare", FLARE_LAYOUT)
    return build_plan(release, raw, task_name, scan, {"split_list": str(split_json) if split_json else None})
