"""Synapse multi-organ CT (BTCV challenge) raw release -> a task folder.

`synapse`: the UNETR++/nnFormer protocol. All 30 labelled cases go to imagesTr/labelsTr, the fixed
fold-0 split (18 train / 12 val) is written to `splits_synapse.json`, and the 12 validation cases (the
reported test set) are also copied to imagesTs/labelsTs, as in the seed's `Task02_Synapse`. Evaluated on
8 organs. `btcv`: the BTCV challenge protocol. The same 30 training cases (5-fold cross-validation, no
fixed split), the 20 unlabelled `Testing/img` volumes as imagesTs, all 13 organs evaluated.
"""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.layout import (
    check_pair, check_problems, descend, list_nifti, read_3d_header, require_folder,
)
from unetr_pp.dataset.converters.task_writer import TaskPlan, image_jobs, dataset_json_v1, label_job

BTCV_LABELS = {
    0: "background", 1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus",
    6: "liver", 7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "portal vein and splenic vein",
    11: "pancreas", 12: "right adrenal gland", 13: "left adrenal gland",
}
SYNAPSE_VAL_CASES = tuple(f"img{n:04d}" for n in (1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38))
EXPECTED_LAYOUT = """\
  RAW/                                  the Synapse 'RawData' folder (or its parent)
    Training/img/img0001.nii.gz ...     CT volumes
    Training/label/label0001.nii.gz ... label maps (0 background, 1..13 BTCV organs), numbers as the images
    Testing/img/img0061.nii.gz ...      unlabelled challenge volumes (used by --source btcv only)"""

_WRAPPERS = ("RawData", "Abdomen/RawData")
_DESCRIPTION = ("Multi-atlas labeling beyond the cranial vault (BTCV, Synapse syn3193805): "
                "abdominal CT, 13 organs")


def _numbered(folder: Path, prefix: str, problems: list[str]) -> dict[str, Path]:
    """`{'0001': path}` for the `<prefix>0001.nii.gz` files of `folder`; other NIfTI files are problems."""
    pattern = re.compile(rf"^{prefix}(\d+)\.nii(\.gz)?$")
    found: dict[str, Path] = {}
    for path in list_nifti(folder):
        match = pattern.match(path.name)
        if match is None:
            problems.append(f"{path}: unexpected file name (expected {prefix}NNNN.nii.gz)")
        elif match.group(1) in found:
            problems.append(f"{path}: duplicate of {found[match.group(1)].name}")
        else:
            found[match.group(1)] = path
    return found


def _scan(raw: Path, with_testing: bool) -> tuple[dict[str, tuple[Path, Path]], dict[str, Path], list[str]]:
    """-> ({case: (image, label)}, {case: test image}, warnings); layout problems raise one error."""
    problems: list[str] = []
    warnings: list[str] = []
    images = _numbered(require_folder(raw, "Training/img", problems), "img", problems)
    labels = _numbered(require_folder(raw, "Training/label", problems), "label", problems)
    for number in sorted(set(images) - set(labels)):
        problems.append(f"{images[number]}: no matching label Training/label/label{number}.nii.gz")
    for number in sorted(set(labels) - set(images)):
        problems.append(f"{labels[number]}: no matching image Training/img/img{number}.nii.gz")
    if not images and not labels and (raw / "Training").is_dir():
        problems.append(f"{raw / 'Training'}: no img*/label* NIfTI files found")
    pairs = {f"img{n}": (images[n], labels[n]) for n in sorted(set(images) & set(labels))}
    for image, label in pairs.values():
        check_pair(image, label, problems, warnings)
    tests: dict[str, Path] = {}
    if with_testing and (raw / "Testing").exists():
        tests = {f"img{n}": p for n, p in _numbered(require_folder(raw, "Testing/img", problems),
                                                     "img", problems).items()}
        for case, path in tests.items():
            if case in pairs:
                problems.append(f"{path}: case {case} is also a training case")
            read_3d_header(path, problems)
    check_problems(raw, "synapse/btcv", problems, EXPECTED_LAYOUT)
    return pairs, tests, warnings


def _training_jobs(pairs: dict[str, tuple[Path, Path]], image_folder: str, label_folder: str) -> list:
    jobs = []
    for case, (image, label) in pairs.items():
        jobs += image_jobs(case, image_folder, [image])
        jobs.append(label_job(case, label_folder, label, set(BTCV_LABELS)))
    return jobs


def plan_synapse(raw: Path, task_name: str) -> TaskPlan:
    """Synapse protocol: 30 training cases, fixed 18/12 split, the 12 validation cases also as test set."""
    raw = descend(raw, _WRAPPERS, "Training")
    pairs, _, warnings = _scan(raw, with_testing=False)
    missing = [case for case in SYNAPSE_VAL_CASES if case not in pairs]
    if missing:
        check_problems(raw, "synapse", [
            f"Training/: the fixed Synapse split needs cases {', '.join(missing)} "
            f"(use --source btcv for a task without the fixed split)"], EXPECTED_LAYOUT)
    val = list(SYNAPSE_VAL_CASES)
    train = [case for case in pairs if case not in SYNAPSE_VAL_CASES]
    test_pairs = {case: pairs[case] for case in val}
    dataset_json = dataset_json_v1(
        "Synapse", _DESCRIPTION, {0: "CT"}, BTCV_LABELS, list(pairs), val,
        {"source": "synapse", "raw_folder": str(raw.resolve()), "evaluation_protocol": "synapse",
         "fixed_split_file": "splits_synapse.json", "labels_test_folder": "labelsTs"},
    )
    return TaskPlan(
        task_name, dataset_json,
        _training_jobs(pairs, "imagesTr", "labelsTr") + _training_jobs(test_pairs, "imagesTs", "labelsTs"),
        extra_json={"splits_synapse.json": [{"train": train, "val": val}]},
        warnings=warnings,
    )


def plan_btcv(raw: Path, task_name: str) -> TaskPlan:
    """BTCV protocol: 30 training cases (cross-validation), the challenge's unlabelled test volumes."""
    raw = descend(raw, _WRAPPERS, "Training")
    pairs, tests, warnings = _scan(raw, with_testing=True)
    dataset_json = dataset_json_v1(
        "BTCV", _DESCRIPTION, {0: "CT"}, BTCV_LABELS, list(pairs), list(tests),
        {"source": "btcv", "raw_folder": str(raw.resolve()), "evaluation_protocol": "btcv"},
    )
    jobs = _training_jobs(pairs, "imagesTr", "labelsTr")
    for case, path in tests.items():
        jobs += image_jobs(case, "imagesTs", [path])
    return TaskPlan(task_name, dataset_json, jobs, warnings=warnings)
