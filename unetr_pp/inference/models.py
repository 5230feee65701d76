"""Find a trained model's fold folders, read each fold's `<checkpoint>.model` + `.model.json`, rebuild the networks."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from unetr_pp.inference.sliding_window import Network
from unetr_pp.io.plans import Configuration, Plans
from unetr_pp.networks import build_network as registry_build
from unetr_pp.networks.official import layout_problems, read_checkpoint_state_dict, strip_module_prefix
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, results_folder
from unetr_pp.utilities.device import resolve_device
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
    plans: Plans
    configuration: str
    network_name: str

    @property
    def config(self) -> Configuration:
        """The plans configuration the networks were trained with."""
        return self.plans.configuration(self.configuration)


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


def _selected_folds(folder: Path, folds: Sequence[str] | None) -> list[str]:
    if folds:
        return [str(f) for f in folds]
    found = sorted((m.group(1) for p in folder.iterdir() if p.is_dir() and (m := _FOLD_RE.match(p.name))),
                   key=lambda f: (f == "all", int(f) if f.isdigit() else 0))
    if not found:
        raise UnetrPPError(f"{folder}: no fold_<k> folders; train a fold first or give -f")
    return found


def _read_sidecar(path: Path) -> tuple[dict, Plans]:
    """The sidecar and its plans, validated (the trained configuration must be in them)."""
    sidecar = load_json(path)
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise UnetrPPError(f"{path}: checkpoint sidecar lacks {', '.join(missing)}")
    plans = Plans.from_json(sidecar["plans"], str(path))
    plans.configuration(sidecar["configuration"])
    return sidecar, plans


def build_network(name: str, config: Configuration) -> nn.Module:
    """The registry's network `name` for a plans configuration, deep supervision off."""
    return registry_build(name, config, deep_supervision=False)


def _load_fold(checkpoint: Path, sidecar: dict, plans: Plans, device: torch.device) -> nn.Module:
    network = build_network(sidecar["network"], plans.configuration(sidecar["configuration"]))
    state_dict = strip_module_prefix(read_checkpoint_state_dict(checkpoint), set(network.state_dict()))
    problems = layout_problems(state_dict, network)
    if problems:
        raise problems_error(f"{checkpoint}: weights do not fit network {sidecar['network']!r}", problems)
    network.load_state_dict(state_dict, strict=True)
    return network.to(device).eval()


def checkpoint_file_name(checkpoint: str) -> str:
    """`model_final_checkpoint` or `model_final_checkpoint.model` -> `model_final_checkpoint.model`."""
    return checkpoint if checkpoint.endswith(".model") else checkpoint + ".model"


def load_trained_model(folder: str | Path, folds: Sequence[str] | None = None, checkpoint: str = DEFAULT_CHECKPOINT,
                       device: str | torch.device = "cpu") -> TrainedModel:
    """Load `<folder>/fold_<k>/<checkpoint>.model` for each fold (default: every fold folder present).

    Every missing checkpoint or sidecar is listed in one error; all folds must share network and plans.
    """
    folder = Path(folder)
    device = resolve_device(str(device))
    folds = _selected_folds(folder, folds)
    paths = [folder / f"fold_{f}" / checkpoint_file_name(checkpoint) for f in folds]
    missing = [f"{p} (missing)" for p in paths if not p.is_file()]
    missing += [f"{p}.json (missing)" for p in paths if p.is_file() and not p.with_name(p.name + ".json").is_file()]
    if missing:
        raise problems_error(f"checkpoints for fold(s) {' '.join(folds)} not found", missing)
    sidecars = [_read_sidecar(p.with_name(p.name + ".json")) for p in paths]
    first, plans = sidecars[0]
    for path, (sidecar, _) in zip(paths[1:], sidecars[1:]):
        for key in SIDECAR_KEYS:
            if sidecar[key] != first[key]:
                raise UnetrPPError(f"{path}: {key} differs from {paths[0]}; folds of one ensemble must match")
    networks = [_load_fold(p, s, fold_plans, device) for p, (s, fold_plans) in zip(paths, sidecars)]
    return TrainedModel(folder, folds, networks, plans, first["configuration"], first["network"])
