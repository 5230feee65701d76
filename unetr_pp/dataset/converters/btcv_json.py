"""BTCV as MONAI distributes it: imagesTr/labelsTr/imagesTs + a json list (`dataset_0.json`), split kept."""
from __future__ import annotations

from pathlib import Path

from unetr_pp.dataset.converters.cases import Case, Release, Scan, build_plan
from unetr_pp.dataset.converters.layout import LayoutError, check_problems, list_nifti, nifti_stem
from unetr_pp.dataset.converters.synapse import BTCV_LABELS
from unetr_pp.dataset.converters.task_writer import TaskPlan
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

DEFAULT_JSON = "dataset_0.json"
BTCV_JSON_LAYOUT = """\
  RAW/                                  MONAI's BTCV folder ('--data_dir' of the UNETR/SwinUNETR scripts)
    dataset_0.json                      {"training": [{"image": "imagesTr/img0001.nii.gz",
                                          "label": "labelsTr/label0001.nii.gz"}, ...],
                                         "validation": [...], "test": ["imagesTs/img0061.nii.gz", ...]}
    imagesTr/img0001.nii.gz ...         (--split_json FILE: a json list elsewhere, paths relative to RAW)
    labelsTr/label0001.nii.gz ...       labels 0-13 (BTCV organs)
    imagesTs/img0061.nii.gz ...         optional"""


def _entries(obj: dict, path: Path, scan: Scan) -> list[tuple[str, str, str | None]]:
    """-> [(section, image, label or None)] of the json list."""
    out = []
    for section in ("training", "validation", "test"):
        entries = obj.get(section, [])
        if not isinstance(entries, list):
            scan.problems.append(f"{path}: '{section}' must be a list")
            continue
        for i, entry in enumerate(entries):
            image = entry.get("image") if isinstance(entry, dict) else entry
            label = entry.get("label") if isinstance(entry, dict) else None
            if not isinstance(image, str) or (section != "test" and not isinstance(label, str)):
                scan.problems.append(f"{path}: {section}[{i}] needs string 'image'" +
                                     ("" if section == "test" else " and 'label'"))
                continue
            out.append((section, image, label))
    return out


def plan_btcv_json(raw: Path, task_name: str, split_json: Path | None = None) -> TaskPlan:
    """Cases of 'training' + 'validation' -> training (validation = fold 0 val), 'test' -> test images."""
    path = split_json or raw / DEFAULT_JSON
    try:
        obj = load_json(path)
    except UnetrPPError as err:
        raise LayoutError(f"{raw}: not a valid 'btcv_json' raw folder", [str(err)], BTCV_JSON_LAYOUT) from None
    if not isinstance(obj, dict) or "training" not in obj:
        check_problems(raw, "btcv_json", [f"{path}: expected an object with a 'training' list"], BTCV_JSON_LAYOUT)
    scan = Scan()
    listed: set[Path] = set()
    for section, image, label in _entries(obj, path, scan):
        case = Case(nifti_stem(image), raw / image, raw / label if label else None, test=section == "test")
        files = [f for f in (case.image, case.label) if f is not None]
        listed.update(f.resolve() for f in files)
        missing = [f for f in files if not f.is_file()]
        scan.problems += [f"{f}: file not found (listed in {path.name} '{section}')" for f in missing]
        if not missing:
            scan.add(case)
            if section == "validation":
                scan.val.append(case.case_id)
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        for file in list_nifti(raw / folder):
            if file.resolve() not in listed:
                scan.problems.append(f"{file}: not listed in {path.name}")
    release = Release("btcv_json", "BTCV", "BTCV abdominal CT, 13 organs, MONAI json split", {0: "CT"}, BTCV_LABELS,
                      "btcv", BTCV_JSON_LAYOUT)
    return build_plan(release, raw, task_name, scan, {"split_list": str(path)})
