"""Architecture settings of a released checkpoint read from its (renamed) tensor shapes."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from unetr_pp.utilities.errors import UnetrPPError

UX_NETWORKS = ("uxnet", "repuxnet", "deformuxnet")
VIT_PATCH = 16


def _shape(sd: Mapping[str, torch.Tensor], key: str, what: str) -> tuple[int, ...]:
    if key not in sd:
        raise UnetrPPError(f"the checkpoint lacks {key} ({what})")
    return tuple(sd[key].shape)


def _ux_settings(network: str, sd: Mapping[str, torch.Tensor]) -> dict:
    stage_re = re.compile(r"^encoder\.stages\.(\d+)\.(\d+)\.")
    depths: dict[int, set[int]] = {}
    for key in sd:
        if m := stage_re.match(key):
            depths.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    dims = [_shape(sd, f"encoder.norms.{i}.weight", "stage norm")[0] for i in range(len(depths))]
    kwargs = {"dims": dims, "depths": [len(depths[i]) for i in sorted(depths)],
              "hidden_size": _shape(sd, "encoder5.layer.conv1.conv.weight", "bottleneck")[0],
              "kernel_size": _shape(sd, "encoder.stages.0.0.dwconv.weight", "block kernel")[-1]}
    mlp = sd.get("encoder.stages.0.0.mlp.0.weight")
    if mlp is None:
        if network != "repuxnet":
            raise UnetrPPError(f"the checkpoint's {network} blocks have no pointwise MLP (pwconv1)")
        kwargs["mlp"] = "none"
    else:
        kwargs["mlp"] = "grouped" if mlp.shape[1] == 1 else "dense"
    return kwargs


def _unetr_settings(sd: Mapping[str, torch.Tensor]) -> tuple[dict, list[int]]:
    tokens, hidden = _shape(sd, "vit.patch_embedding.position_embeddings", "position embedding")[1:]
    side = round(tokens ** (1 / 3))
    if side ** 3 != tokens:
        raise UnetrPPError(f"UNETR position embedding has {tokens} tokens, not a cube; the patch cannot be told")
    conv = "vit.patch_embedding.patch_embeddings.weight" in sd
    kwargs = {"feature_size": _shape(sd, "encoder1.layer.conv1.conv.weight", "encoder1")[0], "hidden_size": hidden,
              "mlp_dim": _shape(sd, "vit.blocks.0.mlp.linear1.weight", "MLP")[0],
              "proj_type": "conv" if conv else "perceptron"}
    return kwargs, [side * VIT_PATCH] * 3


def settings(network: str, sd: Mapping[str, torch.Tensor]) -> tuple[dict, int, int, list[int] | None]:
    """(network_kwargs, input channels, output channels, patch or None) of a state dict with our key names."""
    head = "out1.conv.conv.weight" if network == "unetr_pp" else "out.conv.conv.weight"
    outputs = _shape(sd, head, "segmentation head")[0]
    if network == "unetr_pp":
        return {}, 0, outputs, None
    if network == "swin_unetr":
        embed = _shape(sd, "swinViT.patch_embed.proj.weight", "patch embedding")
        return {"feature_size": embed[0]}, embed[1], outputs, None
    inputs = _shape(sd, "encoder1.layer.conv1.conv.weight", "encoder1")[1]
    if network == "unetr":
        kwargs, patch = _unetr_settings(sd)
        return kwargs, inputs, outputs, patch
    if network in UX_NETWORKS:
        return _ux_settings(network, sd), inputs, outputs, None
    raise UnetrPPError(f"no import settings for network {network!r}")


def parameter_count(sd: Mapping[str, torch.Tensor]) -> int:
    """Number of values in a state dict (for the import report)."""
    return sum(math.prod(v.shape) for v in sd.values())
