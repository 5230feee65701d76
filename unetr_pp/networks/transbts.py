"""TransBTS (Wang et al.): a 3D CNN encoder (/8), a ViT on its bottleneck tokens, a CNN decoder with skips.

Encoder: conv k3 + Dropout3d, residual GroupNorm blocks (1, 2, 2, 4 per stage), conv k3 s2 between stages ->
BN -> ReLU -> conv k3 to the embedding -> learned position embedding -> pre-norm transformer layers ->
decoder: two conv-BN-ReLU blocks (embedding -> /4), three stages of 1x1 conv, transposed conv k2 s2,
concatenation with the skip, 1x1 conv, residual conv-BN-ReLU block -> 1x1 conv to the classes.
The public code's unused `linear_encoding` and `pre_head_ln` (67,072 parameters) are left out, and its input
dropout is active in training only. One head: no deep supervision.
"""
from __future__ import annotations

from math import prod
from typing import Sequence

import torch
from torch import nn

from unetr_pp.networks.blocks import SingleOutputMixin, check_kwargs, check_patch_divisible, config_value, problems_of
from unetr_pp.networks.transformer_blocks import Mlp, SelfAttention

NETWORK_NAME = "TransBTS"
DOWNSAMPLING = 8
GROUPS = 8
DEFAULTS = {"base_channels": 16, "embedding_dim": 512, "num_heads": 8, "num_layers": 4, "hidden_dim": 4096,
            "dropout_rate": 0.1, "attn_dropout_rate": 0.1, "input_dropout": 0.2}


def checked_patch(plans_config: dict, **_kwargs) -> tuple[int, ...]:
    """The plans patch as a 3-tuple, or UnetrPPError naming TransBTS, the patch and the divisor (8) it needs."""
    return check_patch_divisible(NETWORK_NAME, config_value(NETWORK_NAME, plans_config, "patch_size"),
                                 (DOWNSAMPLING,) * 3)


def validate(plans_config: dict, **kwargs) -> list[str]:
    """Problems of this network's settings for the configuration (the registry's check before building)."""
    return problems_of(checked_patch, plans_config, **kwargs)


class ResidualGNBlock(nn.Module):
    """x + conv(ReLU(GN(conv(ReLU(GN(x)))))), k3: (B, C, *s) -> (B, C, *s)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(GROUPS, channels), nn.ReLU(inplace=True),
                                  nn.Conv3d(channels, channels, 3, padding=1), nn.GroupNorm(GROUPS, channels),
                                  nn.ReLU(inplace=True), nn.Conv3d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *s) -> (B, C, *s)."""
        return x + self.body(x)


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """conv k3 -> BatchNorm -> ReLU."""
    return [nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


class ResidualBNBlock(nn.Module):
    """x + (conv-BN-ReLU) x2, k3: (B, C, *s) -> (B, C, *s)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(channels, channels), *conv_bn_relu(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *s) -> (B, C, *s)."""
        return x + self.body(x)


class CNNEncoder(nn.Module):
    """(B, C_in, *p) -> skips at p, p/2, p/4 (b, 2b, 4b channels) and the bottleneck (B, 8b, *p/8)."""

    def __init__(self, in_channels: int, base: int, input_dropout: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(in_channels, base, 3, padding=1), nn.Dropout3d(input_dropout))
        widths, counts = [base, 2 * base, 4 * base, 8 * base], [1, 2, 2, 4]
        self.stages = nn.ModuleList(nn.Sequential(*(ResidualGNBlock(w) for _ in range(n))) for w, n in zip(widths, counts))
        self.downs = nn.ModuleList(nn.Conv3d(widths[i], widths[i + 1], 3, 2, 1) for i in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, *p) -> [skip p, skip p/2, skip p/4, bottleneck p/8]."""
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.downs[i - 1](x))
            outs.append(x)
        return outs


class TransformerLayer(nn.Module):
    """x + Dropout(Attn(LN(x))), then x + MLP(LN(x)): (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, qkv_bias=False, attn_drop=attn_dropout, proj_drop=attn_dropout)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class UpCat(nn.Module):
    """1x1 conv (cin -> cout), transposed conv k2 s2, concat with the skip, 1x1 conv, residual BN block."""

    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.reduce = nn.Conv3d(cin, cout, 1)
        self.up = nn.ConvTranspose3d(cout, cout, 2, 2)
        self.fuse = nn.Conv3d(skip + cout, cout, 1)
        self.block = ResidualBNBlock(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x (B, cin, *s), skip (B, skip, *2s) -> (B, cout, *2s)."""
        return self.block(self.fuse(torch.cat([skip, self.up(self.reduce(x))], dim=1)))


class TransBTS(SingleOutputMixin, nn.Module):
    """TransBTS: (B, C_in, *patch) -> logits (B, K, *patch); patch divisible by 8, fixed by the position embedding."""

    def __init__(self, in_channels: int, num_classes: int, patch_size: Sequence[int], base_channels: int,
                 embedding_dim: int, num_heads: int, num_layers: int, hidden_dim: int, dropout_rate: float,
                 attn_dropout_rate: float, input_dropout: float, deep_supervision: bool) -> None:
        super().__init__()
        self.deep_supervision = bool(deep_supervision)
        self.grid = tuple(p // DOWNSAMPLING for p in patch_size)
        e, b = embedding_dim, base_channels
        self.encoder = CNNEncoder(in_channels, b, input_dropout)
        self.embed = nn.Sequential(nn.BatchNorm3d(8 * b), nn.ReLU(inplace=True), nn.Conv3d(8 * b, e, 3, padding=1))
        self.position = nn.Parameter(torch.zeros(1, prod(self.grid), e))
        self.embed_drop = nn.Dropout(dropout_rate)
        self.transformer = nn.Sequential(*(TransformerLayer(e, num_heads, hidden_dim, dropout_rate, attn_dropout_rate)
                                           for _ in range(num_layers)))
        self.bottleneck = nn.Sequential(*conv_bn_relu(e, e // 4), *conv_bn_relu(e // 4, e // 4),
                                        ResidualBNBlock(e // 4))
        self.ups = nn.ModuleList([UpCat(e // 4, 4 * b, e // 8), UpCat(e // 8, 2 * b, e // 16),
                                  UpCat(e // 16, b, e // 32)])
        self.out = nn.Conv3d(e // 32, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> (B, K, *patch), or [that] in train mode with deep supervision."""
        *skips, x = self.encoder(x)
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = self.transformer(self.embed_drop(tokens + self.position))
        x = self.bottleneck(tokens.transpose(1, 2).reshape(x.shape[0], -1, *self.grid))
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return self.contract_output(self.out(x))


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> TransBTS:
    """TransBTS for a plans configuration; kwargs (network_kwargs["transbts"]): base_channels (16), embedding_dim
    (512), num_heads (8), num_layers (4), hidden_dim (4096), dropout_rate (0.1), attn_dropout_rate (0.1),
    input_dropout (0.2)."""
    check_kwargs(NETWORK_NAME, kwargs, tuple(DEFAULTS))
    patch = checked_patch(plans_config)
    return TransBTS(int(config_value(NETWORK_NAME, plans_config, "num_input_channels")),
                    int(config_value(NETWORK_NAME, plans_config, "num_classes")), patch,
                    deep_supervision=deep_supervision, **{**DEFAULTS, **kwargs})
