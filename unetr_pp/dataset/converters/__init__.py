"""Raw dataset releases (Synapse/BTCV, ACDC, BraTS, MSD, AMOS, FLARE21, FeTA, KiTS19, LiTS, TCIA Pancreas-CT,
BTCV json list) -> a unetr_pp raw task folder.

Every converter first validates the whole raw layout from file names and image headers (one error
lists every problem, with the expected layout), then writes `Task<ID:03d>_<Name>/` (imagesTr,
labelsTr, imagesTs, v1 dataset.json) into a temp folder that is renamed at the end. The raw input is
only read.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from unetr_pp import paths
from unetr_pp.dataset.converters import (
    abdomen, acdc, brats, btcv_json, feta, kidney_liver, msd, synapse, tcia_pancreas,
)
from unetr_pp.dataset.converters.task_writer import TaskPlan, check_target, write_task
from unetr_pp.dataset.integrity import default_num_processes
from unetr_pp.utilities.errors import UnetrPPError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Source:
    """A raw release kind: its planner, default task id/name (None: from the MSD folder name) and the
    options (`split_json`, `modality`) its planner takes as keyword arguments."""

    plan: Callable[..., TaskPlan]
    default_id: int | None
    default_name: str | None
    options: tuple[str, ...] = field(default_factory=tuple)


SOURCES: dict[str, Source] = {
    "synapse": Source(synapse.plan_synapse, 2, "Synapse"),
    "btcv": Source(synapse.plan_btcv, 17, "BTCV"),
    "acdc": Source(acdc.plan_acdc, 1, "ACDC"),
    "brats": Source(brats.plan_brats, 3, "tumor"),
    "msd": Source(msd.plan_msd, None, None),
    "amos": Source(abdomen.plan_amos, 218, "AMOS2022", ("split_json", "modality")),
    "flare21": Source(abdomen.plan_flare21, 221, "FLARE2021", ("split_json",)),
    "feta": Source(feta.plan_feta, 222, "FeTA2021", ("split_json",)),
    "kits19": Source(kidney_liver.plan_kits19, 40, "KiTS2019"),
    "lits": Source(kidney_liver.plan_lits, 29, "LiTS"),
    "tcia_pancreas": Source(tcia_pancreas.plan_tcia_pancreas, 230, "TCIAPancreas"),
    "btcv_json": Source(btcv_json.plan_btcv_json, 18, "BTCV_MONAI", ("split_json",)),
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


def _source_options(source: str, split_json: str | os.PathLike | None, modality: str | None) -> dict:
    """The keyword options for the source's planner; an option the source does not take is an error."""
    given = {"split_json": split_json, "modality": modality}
    options = {key: value for key, value in given.items() if value is not None}
    unsupported = [key for key in options if key not in SOURCES[source].options]
    if unsupported:
        takes = ", ".join(name for name, s in SOURCES.items() if unsupported[0] in s.options)
        raise UnetrPPError(f"--{unsupported[0]} does not apply to --source {source} (only to: {takes})")
    if "split_json" in options:
        options["split_json"] = Path(options["split_json"]).expanduser()
        if not options["split_json"].is_file():
            raise UnetrPPError(f"{options['split_json']}: json list not found")
    return options


def convert_task(source: str, raw: str | os.PathLike, task_id: int | None = None, name: str | None = None,
                 output_dir: str | os.PathLike | None = None, overwrite: bool = False,
                 num_processes: int | None = None, split_json: str | os.PathLike | None = None,
                 modality: str | None = None) -> ConvertedTask:
    """Convert the raw release at `raw` into `output_dir/Task<ID>_<Name>` (default: the raw data folder).

    `split_json`: a MONAI-style json list (e.g. MASILab's dataset_FLARE.json) choosing the cases and their
    split; `modality`: AMOS subset `ct` (default), `mri` or `all`.
    """
    raw = Path(raw).expanduser()
    if not raw.is_dir():
        raise UnetrPPError(f"{raw}: raw folder not found")
    task_name = task_name_for(source, raw, task_id, name)
    options = _source_options(source, split_json, modality)
    output_dir = Path(output_dir).expanduser() if output_dir is not None else paths.raw_data_folder()
    check_target(output_dir / task_name, raw, overwrite)
    plan = SOURCES[source].plan(raw, task_name, **options)
    path = write_task(plan, output_dir, raw, overwrite, num_processes or default_num_processes())
    return ConvertedTask(path, plan.num_training, plan.num_test, plan.warnings)


__all__ = ["SOURCES", "ConvertedTask", "convert_task", "default_num_processes", "task_name_for"]
