"""Checkpoint files: atomic `torch.save` + `.model.json` sidecar, newest-valid lookup for `-c`, pretrained weights.

Test hook: env `unetr_pp_test_kill_in_checkpoint=<name>:<N>` makes the process SIGKILL itself on the N-th write
of `<name>.model` in this process, after the temporary file is complete and before it is renamed (used by the
crash-resume test).
"""
from __future__ import annotations

import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json, umask_mode

CHECKPOINT_NAMES = ("model_final_checkpoint", "model_latest", "model_best")
REQUIRED_KEYS = ("epoch", "state_dict", "optimizer_state_dict", "lr_scheduler_state_dict", "amp_grad_scaler",
                 "plot_stuff", "best_stuff", "rng_state")
IDENTITY_KEYS = ("trainer", "network", "configuration", "plans_identifier", "task", "fold")
KILL_VAR = "unetr_pp_test_kill_in_checkpoint"
_writes: dict[str, int] = {}


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _maybe_kill_for_test(path: Path) -> None:
    _writes[path.name] = _writes.get(path.name, 0) + 1
    if os.environ.get(KILL_VAR) == f"{path.stem}:{_writes[path.name]}":
        os.kill(os.getpid(), signal.SIGKILL)


def save_checkpoint(path: Path, content: dict[str, Any], sidecar: dict[str, Any]) -> None:
    """torch.save `content` to `path` (tmp + fsync + rename), then the sidecar `<path>.json` (atomic JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(content, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, umask_mode(0o666))
        _maybe_kill_for_test(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    save_json({**sidecar, "epoch": content["epoch"]}, path.with_name(path.name + ".json"))
    _fsync_dir(path.parent)


@dataclass
class LoadedCheckpoint:
    """A checkpoint that loaded completely and agrees with its sidecar."""

    path: Path
    content: dict[str, Any]
    sidecar: dict[str, Any]


def read_checkpoint(path: Path) -> LoadedCheckpoint:
    """Load `path` and its sidecar; UnetrPPError when either is damaged or they disagree."""
    sidecar_path = path.with_name(path.name + ".json")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch/pickle raise many types for a truncated file
        raise UnetrPPError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(content, dict) or any(k not in content for k in REQUIRED_KEYS):
        raise UnetrPPError(f"{path}: checkpoint lacks some of {', '.join(REQUIRED_KEYS)}")
    sidecar = load_json(sidecar_path)
    if not isinstance(sidecar, dict) or sidecar.get("epoch") != content["epoch"]:
        found = sidecar.get("epoch") if isinstance(sidecar, dict) else None
        raise UnetrPPError(f"{sidecar_path}: sidecar epoch {found} does not match the checkpoint's epoch "
                           f"{content['epoch']}")
    return LoadedCheckpoint(path, content, sidecar)


def find_resume_checkpoint(folder: Path, expected: dict[str, Any]) -> tuple[LoadedCheckpoint | None, list[str]]:
    """(newest loadable checkpoint in `folder` by epoch, or None; one message per damaged checkpoint skipped).

    `expected` holds the IDENTITY_KEYS and `plans` of this run; a valid checkpoint of another trainer, task,
    fold or plans raises UnetrPPError (continuing it would mix two experiments).
    """
    loaded: list[tuple[LoadedCheckpoint, int]] = []
    skipped: list[str] = []
    for rank, name in enumerate(CHECKPOINT_NAMES):
        path = folder / f"{name}.model"
        if path.is_file():
            try:
                loaded.append((read_checkpoint(path), rank))
            except UnetrPPError as err:
                skipped.append(str(err))
    if not loaded:
        return None, skipped
    loaded.sort(key=lambda item: (-int(item[0].content["epoch"]), item[1]))
    best = loaded[0][0]
    for key in IDENTITY_KEYS + ("plans",):
        if best.sidecar.get(key) != expected.get(key):
            what = "plans" if key == "plans" else f"{key} {best.sidecar.get(key)!r} (this run: {expected.get(key)!r})"
            raise UnetrPPError(f"{best.path}: checkpoint was trained with a different {what}; "
                               "continue with the same trainer/plans or train into a new folder without -c")
    return best, skipped


def load_pretrained_weights(network: nn.Module, path: Path) -> dict[str, Any]:
    """Copy the shape-matching weights of checkpoint `path` into `network` -> report of what was loaded and why not.

    The file may be any released layout (UNETR++, UX-Net family, UNETR, SwinUNETR incl. the self-supervised
    `model_swinvit.pt` encoder): its keys are renamed with the importer's key maps first. Report keys: file,
    source, loaded (keys), skipped (file keys the network lacks), shape_mismatch, not_in_file (kept initialised).
    """
    from unetr_pp.training.importing.keymaps import detect_source, read_released, rename_keys

    released = read_released(path)
    layout = detect_source(released.state_dict)
    source = rename_keys(released.state_dict, layout) if layout is not None else released.state_dict
    target = network.state_dict()
    loaded, skipped, mismatched = [], [], []
    for key, value in source.items():
        if key not in target:
            skipped.append({"key": key, "reason": "not in the network"})
        elif tuple(target[key].shape) != tuple(value.shape):
            mismatched.append({"key": key, "file_shape": list(value.shape), "network_shape": list(target[key].shape)})
        else:
            target[key] = value
            loaded.append(key)
    if not loaded:
        examples = [s["key"] for s in skipped[:3]] + [m["key"] for m in mismatched[:3]]
        raise UnetrPPError(f"{path}: no weight of the checkpoint fits the network (e.g. {examples})")
    network.load_state_dict(target)
    return {"file": str(path), "source": layout.name if layout is not None else None, "loaded": loaded,
            "skipped": skipped, "shape_mismatch": mismatched,
            "not_in_file": [key for key in target if key not in source]}


def pretrained_report_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable summary of a pretrained-weights report (one line per shape mismatch, counts otherwise)."""
    head = (f"pretrained weights {report['file']} (layout {report['source'] or 'ours'}): loaded "
            f"{len(report['loaded'])} tensors, {len(report['shape_mismatch'])} shape-mismatched, "
            f"{len(report['skipped'])} not in the network, {len(report['not_in_file'])} of the network not in the "
            "file (kept initialised)")
    lines = [head]
    lines += [f"  - shape mismatch {m['key']}: file {m['file_shape']} vs network {m['network_shape']}"
              for m in report["shape_mismatch"]]
    lines += [f"  - not in the network: {s['key']}" for s in report["skipped"][:10]]
    if len(report["skipped"]) > 10:
        lines.append(f"  - ... and {len(report['skipped']) - 10} more not in the network")
    return lines
