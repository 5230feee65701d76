"""Task output: the v1 dataset.json, and writing a whole task into a temp folder renamed at the end."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from unetr_pp.dataset.converters.jobs import FileJob, run_jobs
from unetr_pp.dataset.converters.layout import summarize_problems
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import check_writable_dir, publish_folder, save_json

TASK_FOLDERS = ("imagesTr", "labelsTr", "imagesTs")
ENDING = ".nii.gz"
CONVERSION_KEY = "unetr_pp_conversion"


@dataclass
class TaskPlan:
    """What a converter decided: the task folder name, its dataset.json, the files, extra JSON files."""

    task_name: str
    dataset_json: dict
    jobs: list[FileJob]
    extra_json: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_training(self) -> int:
        """Number of training cases."""
        return len(self.dataset_json["training"])

    @property
    def num_test(self) -> int:
        """Number of test cases."""
        return len(self.dataset_json["test"])


def image_jobs(case_id: str, folder: str, sources: list[Path]) -> list[FileJob]:
    """Jobs writing `folder/<case>_0000.nii.gz …` from one 3D file per channel."""
    return [FileJob(source, (f"{folder}/{case_id}_{i:04d}{ENDING}",)) for i, source in enumerate(sources)]


def split_job(case_id: str, folder: str, source: Path, num_channels: int) -> FileJob:
    """Job writing `folder/<case>_0000.nii.gz …` from the `num_channels` volumes of one 4D file."""
    targets = tuple(f"{folder}/{case_id}_{i:04d}{ENDING}" for i in range(num_channels))
    return FileJob(source, targets, channels=tuple(range(num_channels)))


def label_job(case_id: str, folder: str, source: Path, values: set[int],
              mapping: dict[int, int] | None = None) -> FileJob:
    """Job writing `folder/<case>.nii.gz` from a label file whose values must be in `values`."""
    return FileJob(source, (f"{folder}/{case_id}{ENDING}",), label_values=frozenset(values),
                   label_map=tuple(sorted(mapping.items())) if mapping else None)


def dataset_json_v1(name: str, description: str, modality: dict[int, str], labels: dict[int, str],
                    training: list[str], test: list[str], conversion: dict, extra: dict | None = None) -> dict:
    """An MSD / nnU-Net v1 dataset.json for the given case ids (`conversion` goes under CONVERSION_KEY)."""
    obj = dict(extra or {})
    obj.update({
        "name": name,
        "description": description,
        "tensorImageSize": "3D",
        "modality": {str(k): v for k, v in sorted(modality.items())},
        "labels": {str(k): v for k, v in sorted(labels.items())},
        "numTraining": len(training),
        "numTest": len(test),
        "training": [{"image": f"./imagesTr/{c}{ENDING}", "label": f"./labelsTr/{c}{ENDING}"} for c in training],
        "test": [f"./imagesTs/{c}{ENDING}" for c in test],
        CONVERSION_KEY: conversion,
    })
    return obj


def check_target(target: Path, raw: Path, overwrite: bool) -> None:
    """Refuse an existing task (unless `overwrite`) and an output that would replace or sit inside the raw input."""
    raw_resolved, target_resolved = raw.resolve(), target.resolve()
    if raw_resolved == target_resolved or target_resolved in raw_resolved.parents:
        raise UnetrPPError(f"{target}: the output task would replace the raw input {raw}; choose another -o or -t")
    if raw_resolved in target_resolved.parents:
        raise UnetrPPError(f"{target}: the output task would be written inside the raw input {raw}; choose another -o")
    if target.exists() and not overwrite:
        raise UnetrPPError(f"{target}: task already exists; pass --overwrite to replace it")


def write_task(plan: TaskPlan, output_dir: Path, raw: Path, overwrite: bool, num_processes: int) -> Path:
    """Write `plan` to `output_dir/<task_name>` via a temp folder renamed at the end -> the task folder.

    Any failure (bad voxel data, unexpected labels, full disk, Ctrl-C) removes the temp folder and
    leaves an existing task untouched; every failing file is listed in one error.
    """
    output_dir = check_writable_dir(output_dir)
    target = output_dir / plan.task_name
    check_target(target, raw, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.task_name}.converting-", dir=output_dir))
    try:
        folders = set(TASK_FOLDERS) | {relative.split("/")[0] for job in plan.jobs for relative in job.targets}
        for folder in sorted(folders):
            (staging / folder).mkdir()
        problems = run_jobs(plan.jobs, staging, num_processes, desc=f"converting {plan.task_name}")
        if problems:
            raise UnetrPPError(f"{raw}: conversion to {plan.task_name} failed, nothing was written: "
                               f"{len(problems)} problem(s) found", summarize_problems(problems))
        save_json(plan.dataset_json, staging / "dataset.json")
        for name, obj in plan.extra_json.items():
            save_json(obj, staging / name)
        publish_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
