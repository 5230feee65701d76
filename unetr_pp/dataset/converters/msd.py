"""Medical Segmentation Decathlon task (`TaskXX_Name`, 4D multi-modal images) -> one 3D file per channel."""
from __future__ import annotations

from pathlib import Path

from unetr_pp.dataset.converters.layout import (
    Header, check_problems, check_same_grid, list_nifti, nifti_stem, read_3d_header, read_header,
)
from unetr_pp.dataset.converters.task_writer import (
    TaskPlan, dataset_json_v1, image_jobs, label_job, split_job,
)
from unetr_pp.io.dataset_json import int_keyed
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

EXPECTED_LAYOUT = """\
  RAW/ = TaskXX_Name/                   an MSD task folder, e.g. Task06_Lung
    dataset.json                        'modality', 'labels', 'training' [{image, label}], 'test' [image]
    imagesTr/lung_001.nii.gz ...        3D, or 4D with one volume per modality
    labelsTr/lung_001.nii.gz ...        3D label maps
    imagesTs/lung_002.nii.gz ...        optional
    labelsTs/lung_002.nii.gz ...        optional test labels (copied to labelsTs)
  hidden '._*' files (macOS archive residue) are ignored"""
_KEEP_KEYS = ("reference", "licence", "release")


def _entries(obj: dict, path: Path, problems: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """-> ([(image, label)], [test image]) relative paths from dataset.json."""
    training, test = obj.get("training"), obj.get("test", [])
    pairs: list[tuple[str, str]] = []
    if not isinstance(training, list) or not training:
        problems.append(f"{path}: 'training' must be a non-empty list of {{'image', 'label'}}")
        training = []
    for i, entry in enumerate(training):
        if isinstance(entry, dict) and isinstance(entry.get("image"), str) and isinstance(entry.get("label"), str):
            pairs.append((entry["image"], entry["label"]))
        else:
            problems.append(f"{path}: training[{i}] must have string 'image' and 'label'")
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        problems.append(f"{path}: 'test' must be a list of image paths")
        test = []
    return pairs, test


def _check_image(raw: Path, relative: str, n_channels: int, problems: list[str]) -> Header | None:
    """Header of a listed image whose channel count must be `n_channels` (3D counts as one)."""
    path = raw / relative
    case = nifti_stem(path)
    if not path.is_file() and (path.parent / f"{case}_0000.nii.gz").is_file():
        problems.append(f"{path}: not found, but {case}_0000.nii.gz is: this folder is already split into "
                        f"channels (a unetr_pp/nnU-Net task) and needs no conversion")
        return None
    header = read_header(path, problems)
    if header is not None and header.channels != n_channels:
        problems.append(f"{path}: has {header.channels} volume(s), dataset.json lists {n_channels} modalities")
        return None
    return header


def _load(raw: Path) -> dict:
    """The MSD dataset.json as a dict (a missing, malformed or non-object file is a layout error)."""
    path = raw / "dataset.json"
    try:
        obj = load_json(path)
    except UnetrPPError as err:
        obj, problems = None, [str(err)]
    else:
        problems = [] if isinstance(obj, dict) else [f"{path}: top level must be a JSON object"]
    check_problems(raw, "msd", problems, EXPECTED_LAYOUT)
    return obj


def _unlisted(raw: Path, listed: set[Path], problems: list[str]) -> None:
    for folder in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        for path in list_nifti(raw / folder):
            if path.resolve() not in listed:
                problems.append(f"{path}: not listed in dataset.json (no matching image/label entry)")


def _test_label(raw: Path, image: str) -> Path | None:
    """`labelsTs/<case>.nii.gz` of a test image when the task ships test labels (e.g. the seed's Task02_Synapse)."""
    path = raw / "labelsTs" / Path(image).name
    return path if path.is_file() else None


def plan_msd(raw: Path, task_name: str) -> TaskPlan:
    """Split each listed 4D image into `_0000 …` channel files (3D images become `_0000`); copy labels."""
    obj = _load(raw)
    path = raw / "dataset.json"
    problems: list[str] = []
    warnings: list[str] = []
    modality = int_keyed(obj.get("modality"), "modality", path, problems)
    labels = {0: "background", **int_keyed(obj.get("labels"), "labels", path, problems)}
    pairs, tests = _entries(obj, path, problems)
    check_problems(raw, "msd", problems, EXPECTED_LAYOUT)
    listed: set[Path] = set()
    jobs, training, testing = [], [], []
    entries = [(image, raw / label, "Tr") for image, label in pairs]
    entries += [(image, _test_label(raw, image), "Ts") for image in tests]
    for image, label, split in entries:
        case = nifti_stem(image)
        cases = training if split == "Tr" else testing
        if case in cases:
            problems.append(f"{path}: case {case} is listed twice in '{'training' if split == 'Tr' else 'test'}'")
            continue
        cases.append(case)
        listed.add((raw / image).resolve())
        header = _check_image(raw, image, len(modality), problems)
        if header is not None and header.four_d:
            jobs.append(split_job(case, f"images{split}", raw / image, len(modality)))
        else:
            jobs += image_jobs(case, f"images{split}", [raw / image])
        if label is not None:
            listed.add(label.resolve())
            label_header = read_3d_header(label, problems)
            if header is not None and label_header is not None:
                check_same_grid(label_header, header, problems, warnings)
            jobs.append(label_job(case, f"labels{split}", label, set(labels)))
    _unlisted(raw, listed, problems)
    check_problems(raw, "msd", problems, EXPECTED_LAYOUT)
    extra = {key: obj[key] for key in _KEEP_KEYS if key in obj}
    conversion = {"source": "msd", "raw_folder": str(raw.resolve()), "evaluation_protocol": "all-labels",
                  "msd_task": raw.name}
    if any(job.targets[0].startswith("labelsTs/") for job in jobs):
        conversion["labels_test_folder"] = "labelsTs"
    dataset_json = dataset_json_v1(
        str(obj.get("name", raw.name)), str(obj.get("description", "")), modality, labels, training, testing,
        conversion, extra,
    )
    return TaskPlan(task_name, dataset_json, jobs, warnings=warnings)
