"""Network registry: architecture name -> module with `build(plans_config, deep_supervision, **kwargs)` and,
optionally, `validate(plans_config, **kwargs) -> list[str]` (problems of its settings before anything is built).

A name may be a preset of another module's architecture (`NETWORK_PRESETS`): its kwargs come first and the
plans' network_kwargs[name] override them (e.g. `uxnet_k21` = `uxnet` with kernel_size 21).
"""
from __future__ import annotations

import importlib
from typing import Mapping

from torch import nn

from unetr_pp.io.plans import Configuration
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_MODULES: dict[str, str] = {
    "unetr_pp": "unetr_pp.networks.unetr_pp",
    "unetr": "unetr_pp.networks.unetr",
    "swin_unetr": "unetr_pp.networks.swin_unetr",
    "uxnet": "unetr_pp.networks.uxnet",
    "repuxnet": "unetr_pp.networks.repuxnet",
    "deformuxnet": "unetr_pp.networks.deformuxnet",
    "nnunet": "unetr_pp.networks.nnunet",
    "nnformer": "unetr_pp.networks.nnformer",
    "transbts": "unetr_pp.networks.transbts",
    "unest_base": "unetr_pp.networks.unest",
    "unest_large": "unetr_pp.networks.unest",
    "uxnet_k21": "unetr_pp.networks.uxnet",
}
NETWORK_PRESETS: dict[str, dict] = {
    "unest_base": {"variant": "base"},
    "unest_large": {"variant": "large"},
    "uxnet_k21": {"kernel_size": 21},
}
NETWORK_NAMES: tuple[str, ...] = tuple(NETWORK_MODULES)


def _as_mapping(plans_config: Configuration | Mapping) -> Mapping:
    return plans_config.to_json() if isinstance(plans_config, Configuration) else plans_config


def network_kwargs(name: str, plans_config: Configuration | Mapping) -> dict:
    """The build kwargs of `name`: its preset, overridden by plans_config["network_kwargs"][name]."""
    plans_config = _as_mapping(plans_config)
    return {**NETWORK_PRESETS.get(name, {}), **((plans_config.get("network_kwargs") or {}).get(name) or {})}


def network_problems(plans_config: Configuration | Mapping) -> list[str]:
    """Each network named in network_kwargs checks its own settings against the configuration (patch, strides)."""
    plans_config = _as_mapping(plans_config)
    problems = []
    for name in plans_config.get("network_kwargs") or {}:
        if name not in NETWORK_MODULES:
            problems.append(f"network_kwargs: unknown network {name!r}; valid names: {', '.join(NETWORK_NAMES)}")
            continue
        validate = getattr(importlib.import_module(NETWORK_MODULES[name]), "validate", None)
        if validate is not None:
            problems += validate(plans_config, **network_kwargs(name, plans_config))
    return problems


def build_network(name: str, plans_config: Configuration | Mapping, deep_supervision: bool) -> nn.Module:
    """The network `name` for a plans configuration; input (B, num_input_channels, *patch_size).

    Architecture settings come from the name's preset and plans_config["network_kwargs"][name]. Train mode
    with deep supervision returns a list of logits (full resolution first), eval mode the full-resolution logits.
    """
    if name not in NETWORK_MODULES:
        raise UnetrPPError(f"unknown network {name!r}; valid names: {', '.join(NETWORK_NAMES)}")
    plans_config = _as_mapping(plans_config)
    module = importlib.import_module(NETWORK_MODULES[name])
    return module.build(plans_config, deep_supervision, **network_kwargs(name, plans_config))
