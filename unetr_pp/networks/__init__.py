"""One module per architecture, shared blocks, the registry and complexity counting."""
from __future__ import annotations

from unetr_pp.networks.registry import NETWORK_NAMES, build_network

__all__ = ["NETWORK_NAMES", "build_network", "load_official_unetr_pp"]


def __getattr__(name: str):
    """Lazily export `load_official_unetr_pp` from unetr_pp.networks.official."""
    if name == "load_official_unetr_pp":
        from unetr_pp.networks.official import load_official_unetr_pp
        return load_official_unetr_pp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
