"""Shared building blocks of the network zoo: patch checks, the single-output contract, DropPath, LayerNorm, UX decoder."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock
from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock
from torch import nn

from unetr_pp.utilities.errors import UnetrPPError

FULL_RESOLUTION = (1.0, 1.0, 1.0)


def check_patch_divisible(network: str, patch_size: Sequence[int], divisor: Sequence[int]) -> tuple[int, ...]:
    """The patch as a 3-tuple; raises UnetrPPError naming the network, the patch and the per-axis divisor."""
    patch = tuple(int(p) for p in patch_size)
    div = tuple(int(d) for d in divisor)
    if len(patch) != 3:
        raise UnetrPPError(f"{network}: patch size {list(patch)} must have 3 axes (z, y, x)")
    if any(p <= 0 or p % d for p, d in zip(patch, div)):
        raise UnetrPPError(f"{network}: patch size {list(patch)} is not divisible by {list(div)} (per axis); "
                           "choose a patch that is a multiple of it")
    return patch


def problems_of(check: Callable[..., object], *args, **kwargs) -> list[str]:
    """[] when `check(*args, **kwargs)` passes, else the message of the UnetrPPError it raised."""
    try:
        check(*args, **kwargs)
    except UnetrPPError as err:
        return [str(err)]
    return []


def config_value(network: str, plans_config: dict, key: str):
    """plans_config[key], or UnetrPPError naming the network and the missing key."""
    if key not in plans_config:
        raise UnetrPPError(f"{network}: the plans configuration lacks {key!r}")
    return plans_config[key]


def check_kwargs(network: str, kwargs: dict, allowed: Sequence[str]) -> None:
    """Raise UnetrPPError when network_kwargs holds keys the network does not take."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UnetrPPError(f"{network}: unknown network_kwargs {unknown}; allowed: {sorted(allowed)}")


class SingleOutputMixin:
    """Deep-supervision contract for networks with one head: train mode + DS -> [logits], else logits.

    `deep_supervision_scales` is [(1, 1, 1)]: the loss gets a one-element list and the full-res target.
    """

    deep_supervision: bool
    training: bool
    deep_supervision_scales = [FULL_RESOLUTION]

    def contract_output(self, logits: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, K, *patch) -> the same tensor, or a one-element list in train mode with deep supervision."""
        return [logits] if self.deep_supervision and self.training else logits


class DropPath(nn.Module):
    """Stochastic depth per sample: (B, ...) -> (B, ...), rows zeroed with probability p and rescaled."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (B, ...)."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class LayerNormChannelsFirst(nn.Module):
    """LayerNorm over the channel axis of (B, C, *spatial) tensors."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, C, *spatial)."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


def drop_path_rates(depths: Sequence[int], drop_path_rate: float) -> list[list[float]]:
    """Linearly increasing stochastic-depth rates, one list per stage."""
    total = sum(depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for d in depths:
        out.append(rates[start:start + d])
        start += d
    return out


class UXEncoder(nn.Module):
    """UX-Net family encoder: (B, C_in, *patch) -> 4 feature maps at patch/2, /4, /8, /16 with dims[i] channels.

    Stem conv k7 s2 + LayerNorm, then LayerNorm + conv k2 s2 between stages; `block(dim, drop_path)` builds
    one block; each output is LayerNorm'ed.
    """

    def __init__(self, in_channels: int, dims: Sequence[int], depths: Sequence[int], block, drop_path_rate: float) -> None:
        super().__init__()
        self.downsample = nn.ModuleList([nn.Sequential(nn.Conv3d(in_channels, dims[0], 7, stride=2, padding=3),
                                                       LayerNormChannelsFirst(dims[0]))])
        for i in range(1, len(dims)):
            self.downsample.append(nn.Sequential(LayerNormChannelsFirst(dims[i - 1]),
                                                 nn.Conv3d(dims[i - 1], dims[i], 2, stride=2)))
        rates = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList(nn.Sequential(*(block(dim, r) for r in stage_rates))
                                    for dim, stage_rates in zip(dims, rates))
        self.norms = nn.ModuleList(LayerNormChannelsFirst(d) for d in dims)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, *patch) -> [(B, dims[i], *patch / 2^(i+1)) for i in 0..3]."""
        outs = []
        for down, stage, norm in zip(self.downsample, self.stages, self.norms):
            x = stage(down(x))
            outs.append(norm(x))
        return outs


class UXNetFamily(SingleOutputMixin, nn.Module):
    """3D UX-Net-style network: UXEncoder + UNETR-style decoder (MONAI blocks, instance norm, res blocks).

    Input (B, in_channels, *patch) with every axis divisible by 16 -> logits (B, out_channels, *patch).
    """

    divisor = (16, 16, 16)

    def __init__(self, name: str, in_channels: int, out_channels: int, patch_size: Sequence[int], block,
                 dims: Sequence[int] = (48, 96, 192, 384), depths: Sequence[int] = (2, 2, 2, 2),
                 hidden_size: int = 768, drop_path_rate: float = 0.0, deep_supervision: bool = False) -> None:
        super().__init__()
        self.name = name
        self.patch_size = check_patch_divisible(name, patch_size, self.divisor)
        self.deep_supervision = bool(deep_supervision)
        self.encoder = UXEncoder(in_channels, dims, depths, block, drop_path_rate)
        feats = list(dims)

        def basic(cin: int, cout: int) -> UnetrBasicBlock:
            return UnetrBasicBlock(3, cin, cout, kernel_size=3, stride=1, norm_name="instance", res_block=True)

        def up(cin: int, cout: int) -> UnetrUpBlock:
            return UnetrUpBlock(3, cin, cout, kernel_size=3, upsample_kernel_size=2, norm_name="instance",
                                res_block=True)

        self.encoder1 = basic(in_channels, feats[0])
        self.encoder2 = basic(feats[0], feats[1])
        self.encoder3 = basic(feats[1], feats[2])
        self.encoder4 = basic(feats[2], feats[3])
        self.encoder5 = basic(feats[3], hidden_size)
        self.decoder5 = up(hidden_size, feats[3])
        self.decoder4 = up(feats[3], feats[2])
        self.decoder3 = up(feats[2], feats[1])
        self.decoder2 = up(feats[1], feats[0])
        self.decoder1 = basic(feats[0], feats[0])
        self.out = UnetOutBlock(3, feats[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> logits (B, K, *patch) (a one-element list in train mode with deep supervision)."""
        f1, f2, f3, f4 = self.encoder(x)
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(f1)
        enc3 = self.encoder3(f2)
        enc4 = self.encoder4(f3)
        dec = self.decoder5(self.encoder5(f4), enc4)
        dec = self.decoder4(dec, enc3)
        dec = self.decoder3(dec, enc2)
        dec = self.decoder2(dec, enc1)
        return self.contract_output(self.out(self.decoder1(dec)))


UX_OPTIONS = ("dims", "depths", "hidden_size", "drop_path_rate")


def build_ux_family(name: str, plans_config: dict, deep_supervision: bool, block_class,
                    kwargs: dict, block_options: Sequence[str] = ()) -> UXNetFamily:
    """A UXNetFamily from a plans configuration; kwargs in `block_options` go to `block_class(dim, drop_path, ...)`."""
    check_kwargs(name, kwargs, UX_OPTIONS + tuple(block_options))
    net_kwargs = {k: v for k, v in kwargs.items() if k in UX_OPTIONS}
    block_kwargs = {k: v for k, v in kwargs.items() if k in block_options}

    def block(dim: int, drop_path: float) -> nn.Module:
        return block_class(dim, drop_path, **block_kwargs)

    return UXNetFamily(name, int(config_value(name, plans_config, "num_input_channels")),
                       int(config_value(name, plans_config, "num_classes")),
                       config_value(name, plans_config, "patch_size"), block,
                       deep_supervision=deep_supervision, **net_kwargs)
