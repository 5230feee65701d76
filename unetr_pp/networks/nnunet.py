"""nnU-Net generic UNet built from the plans topology (conv-InstanceNorm-LeakyReLU x2 per stage, deep supervision)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from unetr_pp.networks.blocks import check_kwargs, check_patch_divisible, config_value
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_NAME = "nnU-Net UNet"
BASE_FEATURES = 32
MAX_FEATURES = 320
BUILD_OPTIONS = ("base_features", "max_features")


def stage_features(n_stages: int, base: int = BASE_FEATURES, maximum: int = MAX_FEATURES) -> list[int]:
    """min(base * 2^i, maximum) for every stage i."""
    return [min(base * 2 ** i, maximum) for i in range(n_stages)]


class ConvNormAct(nn.Sequential):
    """Conv3d (padding k//2) -> InstanceNorm3d (affine) -> LeakyReLU(0.01): (B, Cin, *s) -> (B, Cout, *s / stride)."""

    def __init__(self, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__(nn.Conv3d(cin, cout, tuple(kernel), tuple(stride), tuple(k // 2 for k in kernel)),
                         nn.InstanceNorm3d(cout, eps=1e-5, affine=True), nn.LeakyReLU(0.01, inplace=True))


class GenericUNet(nn.Module):
    """nnU-Net UNet: (B, C_in, *patch) -> logits (B, K, *patch), or in train mode with deep supervision one
    output per decoder stage, full resolution first (scales in `deep_supervision_scales`)."""

    def __init__(self, in_channels: int, num_classes: int, patch_size: Sequence[int],
                 pool_op_kernel_sizes: Sequence[Sequence[int]], conv_kernel_sizes: Sequence[Sequence[int]],
                 base_features: int = BASE_FEATURES, max_features: int = MAX_FEATURES,
                 deep_supervision: bool = True) -> None:
        super().__init__()
        pools = [tuple(int(v) for v in p) for p in pool_op_kernel_sizes]
        kernels = [tuple(int(v) for v in k) for k in conv_kernel_sizes]
        if len(kernels) != len(pools) + 1 or any(len(k) != 3 for k in pools + kernels):
            raise UnetrPPError(f"{NETWORK_NAME}: conv_kernel_sizes needs one 3-axis entry per stage "
                               f"(= len(pool_op_kernel_sizes) + 1); got {len(kernels)} kernels for {len(pools)} poolings")
        divisor = [math.prod(p[a] for p in pools) for a in range(3)]
        self.patch_size = check_patch_divisible(NETWORK_NAME, patch_size, divisor)
        self.deep_supervision = bool(deep_supervision)
        feats = stage_features(len(kernels), base_features, max_features)
        strides = [(1, 1, 1)] + pools
        self.encoder = nn.ModuleList()
        cin = in_channels
        for f, k, s in zip(feats, kernels, strides):
            self.encoder.append(nn.Sequential(ConvNormAct(cin, f, k, s), ConvNormAct(f, f, k)))
            cin = f
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for stage in range(len(pools) - 1, -1, -1):
            f = feats[stage]
            self.upsample.append(nn.ConvTranspose3d(feats[stage + 1], f, pools[stage], pools[stage], bias=False))
            self.decoder.append(nn.Sequential(ConvNormAct(2 * f, f, kernels[stage]), ConvNormAct(f, f, kernels[stage])))
            self.heads.append(nn.Conv3d(f, num_classes, 1, bias=False))
        cumulative = np.cumprod(np.array([(1, 1, 1)] + pools, dtype=float), axis=0)[:-1]
        self.deep_supervision_scales = [tuple(float(v) for v in 1.0 / c) for c in cumulative]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> (B, K, *patch), or [(B, K, *patch * scale) per decoder stage, full res first]."""
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        outputs = []
        for up, dec, head, skip in zip(self.upsample, self.decoder, self.heads, reversed(skips[:-1])):
            x = dec(torch.cat([up(x), skip], dim=1))
            outputs.append(head(x))
        if self.deep_supervision and self.training:
            return outputs[::-1]
        return outputs[-1]


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> GenericUNet:
    """nnU-Net UNet from patch_size, pool_op_kernel_sizes, conv_kernel_sizes, num_input_channels, num_classes.

    kwargs (plans network_kwargs["nnunet"]): base_features (32), max_features (320).
    """
    check_kwargs(NETWORK_NAME, kwargs, BUILD_OPTIONS)
    return GenericUNet(int(config_value(NETWORK_NAME, plans_config, "num_input_channels")),
                       int(config_value(NETWORK_NAME, plans_config, "num_classes")),
                       config_value(NETWORK_NAME, plans_config, "patch_size"),
                       config_value(NETWORK_NAME, plans_config, "pool_op_kernel_sizes"),
                       config_value(NETWORK_NAME, plans_config, "conv_kernel_sizes"),
                       deep_supervision=deep_supervision, **kwargs)
