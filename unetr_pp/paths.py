"""Environment variables -> folders, and task name resolution (`-t 2` / `-t Task002_Synapse`)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from unetr_pp.utilities.errors import UnetrPPError

RAW_BASE_VAR = "unetr_pp_raw_data_base"
PREPROCESSED_VAR = "unetr_pp_preprocessed"
RESULTS_VAR = "RESULTS_FOLDER"
DEFAULT_PLANS_IDENTIFIER = "unetr_pp_Plansv2.1"

_EXAMPLES = {
    RAW_BASE_VAR: "/data/unetr_pp_raw",
    PREPROCESSED_VAR: "/data/unetr_pp_preprocessed",
    RESULTS_VAR: "/data/unetr_pp_results",
}
_TASK_RE = re.compile(r"^(Task|Dataset)(\d+)_(.+)$")


def _env_folder(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        raise UnetrPPError(
            f"environment variable {var} is not set; set it to a folder, e.g. "
            f"`export {var}={_EXAMPLES[var]}` (see README, 'Folders')"
        )
    return Path(value).expanduser()


def raw_data_base() -> Path:
    """`$unetr_pp_raw_data_base`."""
    return _env_folder(RAW_BASE_VAR)


def raw_data_folder() -> Path:
    """Folder holding raw tasks: `$unetr_pp_raw_data_base/unetr_pp_raw_data`."""
    return raw_data_base() / "unetr_pp_raw_data"


def cropped_data_folder() -> Path:
    """Folder holding cropped tasks: `$unetr_pp_raw_data_base/unetr_pp_cropped_data`."""
    return raw_data_base() / "unetr_pp_cropped_data"


def preprocessed_folder() -> Path:
    """`$unetr_pp_preprocessed`."""
    return _env_folder(PREPROCESSED_VAR)


def results_folder() -> Path:
    """Network results: `$RESULTS_FOLDER/unetr_pp`."""
    return _env_folder(RESULTS_VAR) / "unetr_pp"


def parse_task_name(name: str) -> tuple[int, str] | None:
    """`Task002_Synapse` / `Dataset002_Synapse` -> (2, 'Synapse'); anything else -> None."""
    match = _TASK_RE.match(name)
    if not match:
        return None
    return int(match.group(2)), match.group(3)


def task_name_from_id(task_id: int, name: str) -> str:
    """(2, 'Synapse') -> 'Task002_Synapse'."""
    return f"Task{task_id:03d}_{name}"


def resolve_task(task: str | int, search_dirs: Iterable[Path] | None = None) -> str:
    """Resolve `2`, `'2'`, `'Task002_Synapse'` or `'Dataset002_Synapse'` to an existing task folder name.

    Looks in the raw, cropped and preprocessed folders whose environment variables are set (or in
    `search_dirs`). A full name that exists nowhere is still returned when it is well formed, so
    commands can create it; an id must match exactly one folder.
    """
    if search_dirs is None:
        search_dirs = []
        for getter in (raw_data_folder, cropped_data_folder, preprocessed_folder):
            try:
                search_dirs.append(getter())
            except UnetrPPError:
                pass
    search_dirs = [Path(d) for d in search_dirs]
    text = str(task).strip()
    if parse_task_name(text):
        return text
    if not text.isdigit():
        raise UnetrPPError(
            f"task {text!r} is neither a task id (e.g. 2) nor a task name (e.g. Task002_Synapse)"
        )
    wanted = int(text)
    found: set[str] = set()
    for folder in search_dirs:
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            parsed = parse_task_name(child.name)
            if child.is_dir() and parsed and parsed[0] == wanted:
                found.add(child.name)
    if not found:
        where = ", ".join(str(d) for d in search_dirs) or "(no data folder variables set)"
        raise UnetrPPError(f"no task with id {wanted} found in {where}")
    if len(found) > 1:
        raise UnetrPPError(f"task id {wanted} is ambiguous: {', '.join(sorted(found))}; give the full name")
    return found.pop()
