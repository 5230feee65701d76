"""Network registry: architecture name -> module with `build(plans_config, deep_supervision, **kwargs)`.

A name may be a preset of another module's architecture (`NETWORK_PRESETS`): its kwargs come first and the
plans' network_kwargs[name] override them (e.g. `uxnet_k21` = `uxnet` with kernel_size 21).
"""
from __future__ import annotations

import importlib

from torch import nn

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


def network_kwargs(name: str, plans_config: dict) -> dict:
    """The build kwargs of `name`: its preset, overridden by plans_config["network_kwargs"][name]."""
    return {**NETWORK_PRESETS.get(name, {}), **((plans_config.get("network_kwargs") or {}).get(name) or {})}


def build_network(name: str, plans_config: dict, deep_supervision: bool) -> nn.Module:
    """The network `name` for a plans configuration; input (B, num_input_channels, *patch_size).

    Architecture settings come from the name's preset and plans_config["network_kwargs"][name]. Train mode
    with deep supervision returns a list of logits (full resolution first), eval mode the full-resolution logits.
    """
    if name not in NETWORK_MODULES:
        raise UnetrPPError(f"unknown network {name!r}; valid names: {', '.join(NETWORK_NAMES)}")
    module = importlib.import_module(NETWORK_MODULES[name])
    return module.build(plans_config, deep_supervision, **network_kwargs(name, plans_config))
