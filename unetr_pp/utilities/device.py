"""The torch device a command runs on."""
from __future__ import annotations

import torch

from unetr_pp.utilities.errors import UnetrPPError


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
