"""Find a trained model's fold folders, read each fold's `<checkpoint>.model` + `.model.json`, rebuild the networks."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from unetr_pp.inference.sliding_window import Network
from unetr_pp.networks import build_network as registry_build
from unetr_pp.networks.official import layout_problems, read_checkpoint_state_dict, strip_module_prefix
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, results_folder
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json

DEFAULT_CHECKPOINT = "model_final_checkpoint"
SIDECAR_KEYS = ("network", "configuration", "plans")
_FOLD_RE = re.compile(r"^fold_(\d+|all)$")


@dataclass
class TrainedModel:
    """The networks of the selected folds (eval mode, on `device`) and the plans they were trained with."""

    folder: Path
    folds: list[str]
    networks: list[Network]
    plans: dict
    configuration: str
    network_name: str

    @property
    def plans_config(self) -> dict:
        """The plans configuration the networks were trained with."""
        return self.plans["configurations"][self.configuration]


def trained_model_folder(task: str, trainer: str, configuration: str = "3d_fullres",
                         plans_identifier: str = DEFAULT_PLANS_IDENTIFIER) -> Path:
    """`$RESULTS_FOLDER/unetr_pp/<configuration>/<task>/<trainer>__<plans_identifier>` (must exist)."""
    folder = results_folder() / configuration / task / f"{trainer}__{plans_identifier}"
    if not folder.is_dir():
        parent = folder.parent
        others = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        hint = f" (found there: {', '.join(others)})" if others else ""
        raise UnetrPPError(f"no trained model folder {folder}{hint}; check -t, -tr, -m and -p")
    return folder


def resolve_device(device: str) -> torch.device:
    """`cpu` or `cuda[:k]` as a torch device; CUDA must be available."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UnetrPPError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnetrPPError("device cuda requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UnetrPPError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


def _selected_folds(folder: Path, folds: Sequence[str] | None) -> list[str]:
    if folds:
        return [str(f) for f in folds]
    found = sorted((m.group(1) for p in folder.iterdir() if p.is_dir() and (m := _FOLD_RE.match(p.name))),
                   key=lambda f: (f == "all", int(f) if f.isdigit() else 0))
    if not found:
        raise UnetrPPError(f"{folder}: no fold_<k> folders; train a fold first or give -f")
    return found


def _read_sidecar(path: Path) -> dict:
    sidecar = load_json(path)
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise UnetrPPError(f"{path}: checkpoint sidecar lacks {', '.join(missing)}")
    if sidecar["configuration"] not in sidecar["plans"].get("configurations", {}):
        raise UnetrPPError(f"{path}: plans have no configuration {sidecar['configuration']!r}")
    return sidecar


def build_network(name: str, plans_config: dict) -> nn.Module:
    """The registry's network `name` for `plans_config`, deep supervision off."""
    return registry_build(name, plans_config, deep_supervision=False)


def _load_fold(checkpoint: Path, sidecar: dict, device: torch.device) -> nn.Module:
    network = build_network(sidecar["network"], sidecar["plans"]["configurations"][sidecar["configuration"]])
    state_dict = strip_module_prefix(read_checkpoint_state_dict(checkpoint), set(network.state_dict()))
    problems = layout_problems(state_dict, network)
    if problems:
        raise problems_error(f"{checkpoint}: weights do not fit network {sidecar['network']!r}", problems)
    network.load_state_dict(state_dict, strict=True)
    return network.to(device).eval()


def load_trained_model(folder: str | Path, folds: Sequence[str] | None = None, checkpoint: str = DEFAULT_CHECKPOINT,
                       device: str | torch.device = "cpu") -> TrainedModel:
    """Load `<folder>/fold_<k>/<checkpoint>.model` for each fold (default: every fold folder present).

    Every missing checkpoint or sidecar is listed in one error; all folds must share network and plans.
    """
    folder = Path(folder)
    device = resolve_device(str(device))
    folds = _selected_folds(folder, folds)
    name = checkpoint if checkpoint.endswith(".model") else checkpoint + ".model"
    paths = [folder / f"fold_{f}" / name for f in folds]
    missing = [f"{p} (missing)" for p in paths if not p.is_file()]
    missing += [f"{p}.json (missing)" for p in paths if p.is_file() and not p.with_name(p.name + ".json").is_file()]
    if missing:
        raise problems_error(f"checkpoints for fold(s) {' '.join(folds)} not found", missing)
    sidecars = [_read_sidecar(p.with_name(p.name + ".json")) for p in paths]
    first = sidecars[0]
    for path, sidecar in zip(paths[1:], sidecars[1:]):
        for key in SIDECAR_KEYS:
            if sidecar[key] != first[key]:
                raise UnetrPPError(f"{path}: {key} differs from {paths[0]}; folds of one ensemble must match")
    networks = [_load_fold(p, s, device) for p, s in zip(paths, sidecars)]
    return TrainedModel(folder, folds, networks, first["plans"], first["configuration"], first["network"])
