"""Raw dataset releases (Synapse/BTCV, ACDC, BraTS, MSD) -> a unetr_pp raw task folder.

Every converter first validates the whole raw layout from file names and image headers (one error
lists every problem, with the expected layout), then writes `Task<ID:03d>_<Name>/` (imagesTr,
labelsTr, imagesTs, v1 dataset.json) into a temp folder that is renamed at the end. The raw input is
only read.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unetr_pp import paths
from unetr_pp.dataset.converters import acdc, brats, msd, synapse
from unetr_pp.dataset.converters.task_writer import TaskPlan, check_target, write_task
from unetr_pp.dataset.integrity import default_num_processes
from unetr_pp.utilities.errors import UnetrPPError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Source:
    """A raw release kind: its planner and default task id/name (None: from the MSD folder name)."""

    plan: Callable[[Path, str], TaskPlan]
    default_id: int | None
    default_name: str | None


SOURCES: dict[str, Source] = {
    "synapse": Source(synapse.plan_synapse, 2, "Synapse"),
    "btcv": Source(synapse.plan_btcv, 17, "BTCV"),
    "acdc": Source(acdc.plan_acdc, 1, "ACDC"),
    "brats": Source(brats.plan_brats, 3, "tumor"),
    "msd": Source(msd.plan_msd, None, None),
}


@dataclass(frozen=True)
class ConvertedTask:
    """Result of a conversion: the task folder, case counts and non-fatal header warnings."""

    path: Path
    num_training: int
    num_test: int
    warnings: list[str]


def task_name_for(source: str, raw: Path, task_id: int | None = None, name: str | None = None) -> str:
    """`Task<ID:03d>_<Name>` from the arguments, the source's defaults or (msd) the raw folder name."""
    if source not in SOURCES:
        raise UnetrPPError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    parsed = paths.parse_task_name(raw.name) if source == "msd" else None
    if task_id is None:
        task_id = SOURCES[source].default_id if parsed is None else parsed[0]
    if name is None:
        name = SOURCES[source].default_name if parsed is None else parsed[1]
    if task_id is None:
        raise UnetrPPError(f"{raw}: folder name is not TaskXX_Name, so the task id cannot be derived; give -t ID")
    name = name or raw.name
    if not 0 <= task_id <= 999:
        raise UnetrPPError(f"task id {task_id} must be between 0 and 999")
    if not _NAME_RE.match(name):
        raise UnetrPPError(f"task name {name!r} may only hold letters, digits, '_', '.' and '-'")
    return paths.task_name_from_id(task_id, name)


def convert_task(source: str, raw: str | os.PathLike, task_id: int | None = None, name: str | None = None,
                 output_dir: str | os.PathLike | None = None, overwrite: bool = False,
                 num_processes: int | None = None) -> ConvertedTask:
    """Convert the raw release at `raw` into `output_dir/Task<ID>_<Name>` (default: the raw data folder)."""
    raw = Path(raw).expanduser()
    if not raw.is_dir():
        raise UnetrPPError(f"{raw}: raw folder not found")
    task_name = task_name_for(source, raw, task_id, name)
    output_dir = Path(output_dir).expanduser() if output_dir is not None else paths.raw_data_folder()
    check_target(output_dir / task_name, raw, overwrite)
    plan = SOURCES[source].plan(raw, task_name)
    path = write_task(plan, output_dir, raw, overwrite, num_processes or default_num_processes())
    return ConvertedTask(path, plan.num_training, plan.num_test, plan.warnings)


__all__ = ["SOURCES", "ConvertedTask", "convert_task", "default_num_processes", "task_name_for"]
