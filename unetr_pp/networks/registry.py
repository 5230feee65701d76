"""Network registry: architecture name -> module with `build(plans_config, deep_supervision, **kwargs)`."""
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
}
NETWORK_NAMES: tuple[str, ...] = tuple(NETWORK_MODULES)


def build_network(name: str, plans_config: dict, deep_supervision: bool) -> nn.Module:
    """The network `name` for a plans configuration; input (B, num_input_channels, *patch_size).

    Architecture settings come from plans_config["network_kwargs"][name]. Train mode with deep supervision
    returns a list of logits (full resolution first), eval mode the full-resolution logits.
    """
    if name not in NETWORK_MODULES:
        raise UnetrPPError(f"unknown network {name!r}; valid names: {', '.join(NETWORK_NAMES)}")
    kwargs = dict((plans_config.get("network_kwargs") or {}).get(name) or {})
    module = importlib.import_module(NETWORK_MODULES[name])
    return module.build(plans_config, deep_supervision, **kwargs)
