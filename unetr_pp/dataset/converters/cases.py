"""Shared machinery of the case-list converters (AMOS, FLARE, FeTA, KiTS, LiTS, TCIA, BTCV json list).

A release scanner yields `Case`s (image file or DICOM series folder, optional label, train or test);
`apply_split_list` optionally re-splits them by a MONAI-style json list; `build_plan` checks headers and
turns them into a TaskPlan whose dataset.json carries the release's official split as
`unetr_pp_conversion.preset_splits` (planning copies it into the plans; fold 0 of training uses it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from unetr_pp.dataset.converters.dicom import read_series_header
from unetr_pp.dataset.converters.jobs import FileJob
from unetr_pp.dataset.converters.layout import (
    Header, LayoutError, check_problems, check_same_grid, list_nifti, nifti_stem, read_3d_header,
)
from unetr_pp.dataset.converters.task_writer import ENDING, TaskPlan, dataset_json_v1
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

SPLIT_SECTIONS = ("training", "validation", "test")
_CHANNEL_SUFFIX = re.compile(r"_0000$")


@dataclass
class Case:
    """One case of a release: image (file, or folder of one DICOM series), optional label, train or test."""

    case_id: str
    image: Path
    label: Path | None
    test: bool = False


@dataclass(frozen=True)
class Release:
    """Fixed facts of a release kind: names, channels, labels, evaluation protocol, expected layout."""

    source: str
    name: str
    description: str
    modality: dict[int, str]
    labels: dict[int, str]
    protocol: str
    expected: str
    orientation: str | None = None


@dataclass
class Scan:
    """What a release scanner found: cases by id, the official validation ids, problems and warnings."""

    cases: dict[str, Case] = field(default_factory=dict)
    val: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, case: Case) -> None:
        """Add a case; a second one with the same id is a problem."""
        if case.case_id in self.cases:
            other = self.cases[case.case_id].image
            self.problems.append(f"{case.image}: case {case.case_id} appears twice (also {other})")
        else:
            self.cases[case.case_id] = case


def list_entry_name(entry: object) -> str | None:
    """A json-list entry (`"./imagesTs/x_0000.nii.gz"` or `{"image": ..., "label": ...}`) -> `x`."""
    image = entry.get("image") if isinstance(entry, dict) else entry
    if not isinstance(image, str):
        return None
    return _CHANNEL_SUFFIX.sub("", nifti_stem(image))


def load_split_list(path: Path) -> dict[str, list[str]]:
    """A MONAI-style json list -> {"training"|"validation"|"test": [file stems]} (sections may be absent)."""
    obj = load_json(path)
    problems: list[str] = []
    if not isinstance(obj, dict) or not any(key in obj for key in SPLIT_SECTIONS):
        raise UnetrPPError(f"{path}: not a json list: expected an object with 'training' / 'validation' / 'test' lists")
    sections: dict[str, list[str]] = {}
    for key in SPLIT_SECTIONS:
        entries = obj.get(key, [])
        if not isinstance(entries, list):
            problems.append(f"{path}: '{key}' must be a list")
            continue
        names = [list_entry_name(e) for e in entries]
        problems += [f"{path}: {key}[{i}] has no image path" for i, n in enumerate(names) if n is None]
        sections[key] = [n for n in names if n is not None]
    if problems:
        raise LayoutError(f"{path}: not a valid json list: {len(problems)} problem(s) found", problems,
                          '  {"training": [{"image": ..., "label": ...}], "validation": [...], "test": [image, ...]}')
    return sections


def apply_split_list(scan: Scan, path: Path, to_case_id: Callable[[str], str]) -> None:
    """Keep only the cases a json list names: 'test' -> test (with its label), 'validation' -> fold 0 val."""
    sections = load_split_list(path)
    chosen: dict[str, str] = {}
    for section in SPLIT_SECTIONS:
        for name in sections.get(section, []):
            case_id = to_case_id(name)
            case = scan.cases.get(case_id)
            if case is None:
                scan.problems.append(f"{path}: {section} entry {name} (case {case_id}) is not in the release")
            elif case_id in chosen:
                scan.problems.append(f"{path}: case {case_id} is listed in '{chosen[case_id]}' and '{section}'")
            elif section != "test" and case.label is None:
                scan.problems.append(f"{path}: {section} entry {name}: case {case_id} has no label in the release")
            else:
                chosen[case_id] = section
                case.test = section == "test"
    left_out = sorted(set(scan.cases) - set(chosen))
    if left_out:
        scan.warnings.append(f"{len(left_out)} release case(s) not named by {path.name} were left out "
                             f"(e.g. {', '.join(left_out[:3])})")
    scan.cases = {case_id: scan.cases[case_id] for case_id in sorted(chosen)}
    scan.val = [case_id for case_id in sorted(chosen) if chosen[case_id] == "validation"]


def _header(path: Path, problems: list[str]) -> Header | None:
    return read_series_header(path, problems) if path.is_dir() else read_3d_header(path, problems)


def check_cases(scan: Scan) -> None:
    """Read every header: images 3D (or one DICOM series), labels on their image's grid."""
    for case in scan.cases.values():
        image = _header(case.image, scan.problems)
        label = read_3d_header(case.label, scan.problems) if case.label is not None else None
        if image is not None and label is not None:
            check_same_grid(label, image, scan.problems, scan.warnings)


def build_plan(release: Release, raw: Path, task_name: str, scan: Scan, conversion: dict | None = None) -> TaskPlan:
    """Check the scanned cases (one error for every problem) -> the TaskPlan of the task."""
    if not any(not case.test for case in scan.cases.values()):
        scan.problems.append(f"{raw}: no labelled training case found")
    check_cases(scan)
    check_problems(raw, release.source, scan.problems, release.expected)
    jobs: list[FileJob] = []
    for case in scan.cases.values():
        split = "Ts" if case.test else "Tr"
        jobs.append(FileJob(case.image, (f"images{split}/{case.case_id}_0000{ENDING}",),
                            orientation=release.orientation))
        if case.label is not None:
            jobs.append(FileJob(case.label, (f"labels{split}/{case.case_id}{ENDING}",),
                                label_values=frozenset(release.labels), orientation=release.orientation))
    info = {"source": release.source, "raw_folder": str(raw.resolve()), "evaluation_protocol": release.protocol,
            **(conversion or {})}
    if any(case.test and case.label is not None for case in scan.cases.values()):
        info["labels_test_folder"] = "labelsTs"
    if scan.val:
        info["preset_splits"] = {"0": {"val": list(scan.val)}}
    if release.orientation:
        info["reoriented_to"] = release.orientation
    training = [c for c, case in scan.cases.items() if not case.test]
    testing = [c for c, case in scan.cases.items() if case.test]
    dataset_json = dataset_json_v1(release.name, release.description, release.modality, release.labels,
                                   training, testing, info)
    return TaskPlan(task_name, dataset_json, jobs, warnings=scan.warnings)


def numbered_files(folder: Path, pattern: re.Pattern, problems: list[str], what: str) -> dict[str, Path]:
    """{group(1): path} for the NIfTI files of `folder` matching `pattern`; any other NIfTI is a problem."""
    found: dict[str, Path] = {}
    for path in list_nifti(folder):
        match = pattern.match(path.name)
        if match is None:
            problems.append(f"{path}: unexpected file (expected {what})")
        else:
            found[match.group(1)] = path
    return found
