"""The four official UNETR++ configurations (synapse, acdc, lung, tumor) and loading their released checkpoints.

The settings are those of the official code (commit dcba1c6); tests check them against the recorded
layouts in tests/data/reference/. Checkpoints are `model_final_checkpoint.model` files as written by the
official trainers (and by ours): a torch.save dict whose "state_dict" holds the network weights.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unetr_pp.networks.unetr_pp import UNETRPP, build
from unetr_pp.utilities.errors import UnetrPPError

MODULE_PREFIX = "module."
HEAD_WEIGHT_KEY = "out1.conv.conv.weight"
SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class OfficialConfig:
    """One official UNETR++ configuration: input (1, in_channels, *patch_size), num_classes outputs."""

    dataset: str
    in_channels: int
    num_classes: int
    patch_size: tuple[int, int, int]
    stem_stride: tuple[int, int, int]
    pool_op_kernel_sizes: tuple[tuple[int, int, int], ...]
    num_params: int


def _pools(n_z: int, n_yx: int) -> tuple[tuple[int, int, int], ...]:
    """nnU-Net style pooling list with n_z pools on z and n_yx (>= n_z) on y and x, z pooled last."""
    return tuple((1 if i < n_yx - n_z else 2, 2, 2) for i in range(n_yx))


OFFICIAL_CONFIGS: dict[str, OfficialConfig] = {
    "synapse": OfficialConfig("synapse", 1, 14, (64, 128, 128), (2, 4, 4), _pools(4, 5), 42_952_850),
    "acdc": OfficialConfig("acdc", 1, 4, (16, 160, 160), (1, 4, 4), _pools(3, 5), 66_796_404),
    "lung": OfficialConfig("lung", 1, 2, (32, 192, 192), (1, 4, 4), _pools(3, 5), 121_174_798),
    "tumor": OfficialConfig("tumor", 4, 4, (128, 128, 128), (4, 4, 4), _pools(5, 5), 42_647_604),
}


def official_config(dataset: str) -> OfficialConfig:
    """The official configuration for `dataset` (synapse | acdc | lung | tumor)."""
    if dataset not in OFFICIAL_CONFIGS:
        raise UnetrPPError(f"no official UNETR++ configuration {dataset!r}; choose one of {sorted(OFFICIAL_CONFIGS)}")
    return OFFICIAL_CONFIGS[dataset]


def official_plans_config(dataset: str, num_classes: int | None = None) -> dict:
    """A plans configuration from which `build(cfg, ds, **cfg["network_kwargs"]["unetr_pp"])` gives the official net.

    `num_classes` overrides the dataset's class count (the official trainers take it from the plans).
    """
    cfg = official_config(dataset)
    return {
        "patch_size": list(cfg.patch_size),
        "num_input_channels": cfg.in_channels,
        "num_classes": cfg.num_classes if num_classes is None else int(num_classes),
        "pool_op_kernel_sizes": [list(p) for p in cfg.pool_op_kernel_sizes],
        "network_kwargs": {"unetr_pp": {"variant": dataset, "stem_stride": list(cfg.stem_stride)}},
    }


def build_official_unetr_pp(dataset: str, num_classes: int | None = None) -> UNETRPP:
    """Our UNETR++ in the official configuration of `dataset`, freshly initialised, deep supervision on."""
    plans_config = official_plans_config(dataset, num_classes)
    return build(plans_config, True, **plans_config["network_kwargs"]["unetr_pp"])


def read_checkpoint_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The network weights in a `.model` checkpoint (a dict with "state_dict") or a bare state-dict file.

    Loads with `weights_only=False`: official checkpoints hold numpy float64 scalars in plot_stuff/best_stuff,
    which torch>=2.6's default weights_only=True rejects. Full unpickling can run code, so the file must be
    one you trust (your own training output or the authors' release).
    """
    path = Path(path)
    if not path.is_file():
        raise UnetrPPError(f"{path}: checkpoint file not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch/pickle raise many types for a damaged file
        raise UnetrPPError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        state_dict = content["state_dict"]
    elif isinstance(content, Mapping) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        state_dict = content
    else:
        keys = sorted(map(str, content)) if isinstance(content, Mapping) else type(content).__name__
        raise UnetrPPError(f"{path}: no 'state_dict' in the checkpoint (found {keys})")
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UnetrPPError(f"{path}: state_dict entries that are not tensors: {bad[:SHOWN_PROBLEMS]}")
    return dict(state_dict)


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Drop a DataParallel/DDP `module.` prefix from keys the model does not know (as the official loader does)."""
    return {
        key[len(MODULE_PREFIX):] if key not in model_keys and key.startswith(MODULE_PREFIX) else key: value
        for key, value in state_dict.items()
    }


def layout_problems(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of `state_dict` against `model` (first few of each)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k}: file {list(v.shape)} vs model {list(expected[k])}"
              for k, v in state_dict.items() if k in expected and tuple(v.shape) != expected[k]]
    problems = []
    for what, items in (("missing key", missing), ("unexpected key", unexpected), ("shape mismatch", shapes)):
        problems += [f"{what}: {item}" for item in items[:SHOWN_PROBLEMS]]
        if len(items) > SHOWN_PROBLEMS:
            problems.append(f"... and {len(items) - SHOWN_PROBLEMS} more {what}(s)")
    return problems


def _num_classes_in(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    head = state_dict.get(HEAD_WEIGHT_KEY)
    return int(head.shape[0]) if head is not None and head.dim() == 5 else None


def _matching_datasets(state_dict: Mapping[str, torch.Tensor], num_classes: int | None) -> list[str]:
    """Official datasets whose layout the state dict fits (built on the meta device: no memory, no init cost)."""
    fits = []
    for dataset in OFFICIAL_CONFIGS:
        with torch.device("meta"):
            model = build_official_unetr_pp(dataset, num_classes)
        if not layout_problems(state_dict, model):
            fits.append(dataset)
    return fits


def load_official_unetr_pp(dataset: str, checkpoint: str | Path | None = None) -> UNETRPP:
    """Our UNETR++ in the official `dataset` configuration, with an official checkpoint loaded strictly if given.

    The number of output classes is read from the checkpoint's out1 head (official trainers take it from
    the plans). The checkpoint is unpickled fully (see `read_checkpoint_state_dict`): only load files you
    trust. Returns the network in eval mode on the CPU; a file that does not fit raises UnetrPPError
    naming the file, the first missing/unexpected keys and shape mismatches, and the dataset it fits.
    """
    official_config(dataset)
    if checkpoint is None:
        return build_official_unetr_pp(dataset).eval()
    path = Path(checkpoint)
    raw = read_checkpoint_state_dict(path)
    with torch.device("meta"):
        model_keys = set(build_official_unetr_pp(dataset).state_dict())
    state_dict = strip_module_prefix(raw, model_keys)
    num_classes = _num_classes_in(state_dict)
    with torch.device("meta"):
        problems = layout_problems(state_dict, build_official_unetr_pp(dataset, num_classes))
    if problems:
        fits = [d for d in _matching_datasets(state_dict, num_classes) if d != dataset]
        hint = f"; it fits the official {fits[0]!r} configuration" if fits else ""
        raise UnetrPPError(f"{path}: does not fit the official {dataset!r} UNETR++{hint}", problems)
    model = build_official_unetr_pp(dataset, num_classes)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
