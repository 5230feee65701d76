"""dataset.json v1 (MSD / nnU-Net v1) and v2 (nnU-Net v2) -> one normalised DatasetInfo.

v1: `modality` {"0": "CT"}, `labels` {"0": "background", ...} (id -> name), `training` list of
    {"image": "./imagesTr/case.nii.gz", "label": "./labelsTr/case.nii.gz"}; channel files are
    `imagesTr/case_0000.nii.gz`, `case_0001...`.
v2: `channel_names`, `labels` {"background": 0, ...} (name -> id, or name -> [ids] for regions),
    optional `regions_class_order`, `file_ending`; cases are found by listing `imagesTr/`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from unetr_pp.io.images import SUPPORTED_ENDINGS, image_ending
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json


@dataclass(frozen=True)
class CaseFiles:
    """The expected files of one case (they may not exist; integrity verification checks)."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass
class DatasetInfo:
    """A raw task folder, normalised across dataset.json versions."""

    root: Path
    name: str
    format_version: int
    channel_names: dict[int, str]
    labels: dict[int, str]
    file_ending: str
    regions: dict[str, list[int]] | None = None
    regions_class_order: list[int] | None = None
    training_cases: list[CaseFiles] = field(default_factory=list)
    test_cases: list[CaseFiles] = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        """Number of input channels (modalities)."""
        return len(self.channel_names)

    @property
    def num_classes(self) -> int:
        """Network outputs: labels incl. background, or the number of regions for region tasks."""
        if self.regions:
            return len(self.regions)
        return len(self.labels)

    @property
    def label_values(self) -> set[int]:
        """Every voxel value a label file may contain."""
        values = set(self.labels)
        for ids in (self.regions or {}).values():
            values.update(ids)
        return values | {0}

    @property
    def preset_splits(self) -> dict | None:
        """The release's official split a converter recorded (`unetr_pp_conversion.preset_splits`,
        `{"0": {"val": [case ids]}}`), used by planning as the plans' `preset_splits`; else None."""
        conversion = self.raw.get("unetr_pp_conversion")
        splits = conversion.get("preset_splits") if isinstance(conversion, dict) else None
        return splits if isinstance(splits, dict) and splits else None

    @property
    def foreground_labels(self) -> list[int]:
        """Label ids except background, sorted."""
        return sorted(v for v in self.label_values if v != 0)


def _case_files(root: Path, case_id: str, n_channels: int, ending: str, label: bool) -> CaseFiles:
    images = tuple(root / "imagesTr" / f"{case_id}_{c:04d}{ending}" for c in range(n_channels))
    return CaseFiles(case_id, images, root / "labelsTr" / f"{case_id}{ending}" if label else None)


def _strip_ending(name: str) -> tuple[str, str] | None:
    ending = image_ending(name)
    return (name[: -len(ending)], ending) if ending else None


def int_keyed(mapping: object, key: str, path: Path, problems: list[str]) -> dict[int, str]:
    """`{"0": "CT", ...}` -> {0: "CT", ...} sorted by id; problems (non-object, non-integer keys) are appended, naming `path`."""
    if not isinstance(mapping, dict) or not mapping:
        problems.append(f"{path}: '{key}' must be a non-empty object")
        return {}
    out = {}
    for k, v in mapping.items():
        if not str(k).lstrip("-").isdigit():
            problems.append(f"{path}: '{key}' key {k!r} is not an integer id")
            continue
        out[int(k)] = str(v)
    return dict(sorted(out.items()))


def _scan_cases(root: Path, folder: str, n_channels: int, ending: str, with_label: bool) -> list[CaseFiles]:
    pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(ending) + "$")
    ids = set()
    directory = root / folder
    if directory.is_dir():
        for child in directory.iterdir():
            match = pattern.match(child.name)
            if match:
                ids.add(match.group(1))
    cases = []
    for case_id in sorted(ids):
        images = tuple(directory / f"{case_id}_{c:04d}{ending}" for c in range(n_channels))
        label = root / "labelsTr" / f"{case_id}{ending}" if with_label else None
        cases.append(CaseFiles(case_id, images, label))
    return cases


def _load_v1(root: Path, path: Path, obj: dict, problems: list[str]) -> DatasetInfo | None:
    channels = int_keyed(obj.get("modality"), "modality", path, problems)
    labels = int_keyed(obj.get("labels"), "labels", path, problems)
    training = obj.get("training")
    if not isinstance(training, list):
        problems.append(f"{path}: 'training' must be a list of {{'image', 'label'}} entries")
        training = []
    cases, endings = [], set()
    for i, entry in enumerate(training):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            problems.append(f"{path}: training[{i}] must have 'image' and 'label'")
            continue
        parsed = _strip_ending(Path(entry["image"]).name)
        if parsed is None:
            problems.append(f"{path}: training[{i}] image {entry['image']!r} has no supported ending "
                            f"({', '.join(SUPPORTED_ENDINGS)})")
            continue
        endings.add(parsed[1])
        cases.append(_case_files(root, parsed[0], len(channels), parsed[1], True))
    if len(endings) > 1:
        problems.append(f"{path}: training images mix file endings {sorted(endings)}")
    if problems:
        return None
    ending = endings.pop() if endings else ".nii.gz"
    if 0 not in labels:
        labels = {0: "background", **labels}
    tests = []
    for entry in obj.get("test", []) or []:
        parsed = _strip_ending(Path(str(entry)).name)
        if parsed:
            images = tuple(root / "imagesTs" / f"{parsed[0]}_{c:04d}{parsed[1]}" for c in range(len(channels)))
            tests.append(CaseFiles(parsed[0], images, None))
    if not tests:
        tests = _scan_cases(root, "imagesTs", len(channels), ending, False)
    return DatasetInfo(root, root.name, 1, channels, labels, ending, training_cases=cases,
                       test_cases=tests, raw=obj)


def _load_v2(root: Path, path: Path, obj: dict, problems: list[str]) -> DatasetInfo | None:
    channels = int_keyed(obj.get("channel_names"), "channel_names", path, problems)
    raw_labels = obj.get("labels")
    ending = obj.get("file_ending")
    if not isinstance(ending, str) or ending not in SUPPORTED_ENDINGS:
        problems.append(f"{path}: 'file_ending' must be one of {', '.join(SUPPORTED_ENDINGS)}, got {ending!r}")
    labels: dict[int, str] = {}
    regions: dict[str, list[int]] = {}
    if not isinstance(raw_labels, dict) or not raw_labels:
        problems.append(f"{path}: 'labels' must be a non-empty object of name -> id")
    else:
        for name, value in raw_labels.items():
            if isinstance(value, int) and not isinstance(value, bool):
                labels[value] = name
            elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
                regions[name] = sorted(value) if len(value) > 1 else value
            else:
                problems.append(f"{path}: label {name!r} must map to an integer id or a list of ids")
    if problems:
        return None
    region_order = obj.get("regions_class_order")
    if regions:
        # single-id entries next to regions are regions of one label (nnU-Net v2 convention)
        for label_id, name in list(labels.items()):
            if label_id != 0:
                regions[name] = [label_id]
                del labels[label_id]
        if region_order is None or len(region_order) != len(regions):
            problems.append(f"{path}: region labels need 'regions_class_order' with one id per region")
            return None
    labels = dict(sorted(labels.items()))
    if 0 not in labels:
        labels = {0: "background", **labels}
    return DatasetInfo(
        root, root.name, 2, channels, labels, ending,
        regions=regions or None, regions_class_order=region_order if regions else None,
        training_cases=_scan_cases(root, "imagesTr", len(channels), ending, True),
        test_cases=_scan_cases(root, "imagesTs", len(channels), ending, False),
        raw=obj,
    )


def load_dataset_json(task_dir: str | Path) -> DatasetInfo:
    """Read `task_dir/dataset.json` (v1 or v2) -> DatasetInfo; every structural problem in one error."""
    root = Path(task_dir)
    if not root.is_dir():
        raise UnetrPPError(f"{root}: task folder not found")
    path = root / "dataset.json"
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise UnetrPPError(f"{path}: top level must be a JSON object")
    problems: list[str] = []
    if "channel_names" in obj or "file_ending" in obj:
        info = _load_v2(root, path, obj, problems)
    elif "modality" in obj:
        info = _load_v1(root, path, obj, problems)
    else:
        raise UnetrPPError(
            f"{path}: missing keys: neither 'modality'/'labels'/'training' (v1) nor "
            f"'channel_names'/'labels'/'file_ending' (v2) found"
        )
    if info is None:
        raise problems_error(f"{path}: invalid dataset.json", problems)
    return info
