"""nnFormer (Zhou et al.): a 3D Swin-style encoder-decoder with a conv stem and skip attention (the 3D UX-Net seeds' config).

Conv stem (stride `stem_stride`, two conv-GELU-LN pairs per step) -> 4 stages of shifted-window self-attention,
conv k3 s2 merging between them -> decoder stages: transposed conv k2 s2, then a block whose attention takes its
queries from the upsampled features and keys/values from the skip, then shifted-window blocks -> transposed conv
`stem_stride` to the classes. A stage whose smallest axis is not larger than its window uses one window that size,
unshifted. One head per decoder stage: deep supervision at scales 1, 1/2, 1/4.
"""
from __future__ import annotations

from math import lcm
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unetr_pp.networks.blocks import (DropPath, check_kwargs, check_patch_divisible, config_value, drop_path_rates,
                                      problems_of)
from unetr_pp.networks.transformer_blocks import (
    Mlp,
    channels_last_norm,
    partition,
    to_channels_first,
    to_tokens,
    unpartition,
)
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_NAME = "nnFormer"
DEFAULTS = {"embed_dim": 192, "depths": (2, 2, 2, 2), "num_heads": (6, 12, 24, 48), "window_size": (4, 4, 8, 4),
            "stem_stride": (2, 4, 4), "drop_path_rate": 0.2}
MASK_VALUE = -100.0


def stage_resolutions(patch: Sequence[int], stem: Sequence[int], n_stages: int) -> list[tuple[int, ...]]:
    """Token grid (z, y, x) of each stage: patch / stem / 2^i."""
    return [tuple(p // s // 2 ** i for p, s in zip(patch, stem)) for i in range(n_stages)]


def effective_window(resolution: Sequence[int], window: int) -> int:
    """The stage's window edge: `window`, or the smallest axis when that is not larger (then unshifted)."""
    return max(min(resolution), 1) if min(resolution) <= window else window


def required_divisor(patch: Sequence[int], stem: Sequence[int], windows: Sequence[int]) -> tuple[int, ...]:
    """Per-axis divisor of the patch: every stage grid must hold whole windows (and the last stage exist)."""
    res = stage_resolutions(patch, stem, len(windows))
    return tuple(lcm(s * 2 ** (len(windows) - 1), *(s * 2 ** i * effective_window(r, w)
                                                    for i, (r, w) in enumerate(zip(res, windows))))
                 for s in stem)


def checked_patch(plans_config: dict, **kwargs) -> tuple[int, ...]:
    """The plans patch as a 3-tuple, or UnetrPPError naming nnFormer, the patch and the divisor it needs."""
    options = {**DEFAULTS, **kwargs}
    patch = config_value(NETWORK_NAME, plans_config, "patch_size")
    return check_patch_divisible(NETWORK_NAME, patch, required_divisor(patch, options["stem_stride"],
                                                                       options["window_size"]))


def validate(plans_config: dict, **kwargs) -> list[str]:
    """Problems of this network's settings for the configuration (the registry's check before building)."""
    return problems_of(checked_patch, plans_config, **kwargs)


def relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """(N, N) index into the ((2wz-1)(2wy-1)(2wx-1)) bias table of each token pair's offset, N = prod(window)."""
    grid = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")).flatten(1)
    offset = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0) + torch.tensor([w - 1 for w in window])
    strides = torch.tensor([(2 * window[1] - 1) * (2 * window[2] - 1), 2 * window[2] - 1, 1])
    return (offset * strides).sum(-1)


def shift_mask(shape: Sequence[int], window: int, shift: int, device) -> torch.Tensor:
    """(n_windows, N, N) additive mask keeping attention inside the regions a cyclic shift brought together."""
    region = torch.zeros(1, *shape, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for sz in bounds:
        for sy in bounds:
            for sx in bounds:
                region[:, sz, sy, sx] = label
                label += 1
    ids = partition(region, (window,) * 3).squeeze(-1)
    return torch.where(ids[:, :, None] == ids[:, None, :], 0.0, MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head attention inside windows with a learned relative position bias; (B*nW, N, C) -> same.

    With `cross=True` only keys/values are projected (from the skip) and the queries are given as they are.
    """

    def __init__(self, dim: int, heads: int, window: int, cross: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 3, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", relative_position_index((window,) * 3), persistent=False)
        self.in_proj = nn.Linear(dim, (2 if cross else 3) * dim)  # q, k, v; only k, v when cross
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, query: torch.Tensor | None = None) -> torch.Tensor:
        """x (B*nW, N, C), mask (nW, N, N) or None, query (B*nW, N, C) for cross attention -> (B*nW, N, C)."""
        n, c = x.shape[1:]
        projected = self.in_proj(x).chunk(2 if query is not None else 3, dim=-1)
        q, k, v = ((query,) + projected) if query is not None else projected
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)  # (heads, N, N)
        windows = 1 if mask is None else mask.shape[0]
        if mask is not None:
            bias = bias[None] + mask[:, None]  # (nW, heads, N, N)
        q, k, v = (t.reshape(-1, windows, n, self.heads, c // self.heads).transpose(2, 3) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(2, 3).reshape(-1, n, c))


class SwinBlock(nn.Module):
    """(Shifted-)window attention + MLP, pre-norm residuals, on channels-last tokens (B, Z, Y, X, C) -> same."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, drop_path: float, cross: bool = False) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, cross)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift:
            x = torch.roll(x, (-self.shift,) * 3, dims=(1, 2, 3))
        return partition(x, (self.window,) * 3)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Z, Y, X, C); with `query` (same shape) keys/values come from x, queries from `query`, residual x + query."""
        shape = x.shape[1:4]
        mask = shift_mask(shape, self.window, self.shift, x.device) if self.shift else None
        q = None if query is None else self._windows(self.norm1(query))
        out = unpartition(self.attn(self._windows(self.norm1(x)), mask, q), (self.window,) * 3, shape)
        if self.shift:
            out = torch.roll(out, (self.shift,) * 3, dims=(1, 2, 3))
        x = (x if query is None else x + query) + self.drop_path(out)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvStep(nn.Module):
    """conv k3 (stride) -> GELU -> LN -> conv k3 [-> GELU -> LN]: (B, Cin, *s) -> (B, Cout, *s / stride)."""

    def __init__(self, cin: int, cout: int, stride: Sequence[int], last: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, tuple(stride), 1)
        self.norm1 = nn.LayerNorm(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1)
        self.norm2 = None if last else nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, *s) -> (B, Cout, *s / stride)."""
        x = self.conv2(channels_last_norm(self.norm1, F.gelu(self.conv1(x))))
        return x if self.norm2 is None else channels_last_norm(self.norm2, F.gelu(x))


class Stem(nn.Module):
    """Two conv steps, strides (s0, s1/2, s2/2) and (s0/2, s1/2, s2/2), then LN: (B, Cin, *p) -> (B, *p / stem, C)."""

    def __init__(self, cin: int, dim: int, stem: Sequence[int]) -> None:
        super().__init__()
        self.steps = nn.Sequential(ConvStep(cin, dim // 2, (stem[0], stem[1] // 2, stem[2] // 2), last=False),
                                   ConvStep(dim // 2, dim, tuple(s // 2 for s in stem), last=True))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, *p) -> channels-last tokens (B, *p / stem, C)."""
        return self.norm(to_tokens(self.steps(x)))


class Merge(nn.Module):
    """GELU -> LN -> conv k3 s2 (C -> 2C) on channels-last tokens: (B, Z, Y, X, C) -> (B, Z/2, Y/2, X/2, 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.reduction = nn.Conv3d(dim, 2 * dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Z, Y, X, C) -> (B, Z/2, Y/2, X/2, 2C)."""
        return to_tokens(self.reduction(to_channels_first(self.norm(F.gelu(x)))))


class Expand(nn.Module):
    """LN -> transposed conv k2 s2 (2C -> C) on channels-last tokens: (B, Z, Y, X, 2C) -> (B, 2Z, 2Y, 2X, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(2 * dim)
        self.up = nn.ConvTranspose3d(2 * dim, dim, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Z, Y, X, 2C) -> (B, 2Z, 2Y, 2X, C)."""
        return to_tokens(self.up(to_channels_first(self.norm(x))))


def stage_blocks(dim: int, heads: int, window: int, resolution: Sequence[int], rates: Sequence[float],
                 first_cross: bool) -> nn.ModuleList:
    """One stage's blocks: shift alternating 0 / window // 2 (none when one window spans the stage)."""
    win = effective_window(resolution, window)
    shift = win // 2 if win == window else 0
    return nn.ModuleList(SwinBlock(dim, heads, win, shift if i % 2 else 0, rate, cross=first_cross and i == 0)
                         for i, rate in enumerate(rates))


class NNFormer(nn.Module):
    """nnFormer: (B, C_in, *patch) -> logits (B, K, *patch); train mode with deep supervision one output per
    decoder stage, full resolution first (`deep_supervision_scales`). Patch: see `required_divisor`."""

    def __init__(self, in_channels: int, num_classes: int, patch_size: Sequence[int], embed_dim: int,
                 depths: Sequence[int], num_heads: Sequence[int], window_size: Sequence[int],
                 stem_stride: Sequence[int], drop_path_rate: float, deep_supervision: bool) -> None:
        super().__init__()
        n = len(depths)
        self.deep_supervision = bool(deep_supervision)
        res = stage_resolutions(patch_size, stem_stride, n)
        dims = [embed_dim * 2 ** i for i in range(n)]
        self.stem = Stem(in_channels, embed_dim, stem_stride)
        enc_rates = drop_path_rates(depths, drop_path_rate)
        self.encoder = nn.ModuleList(stage_blocks(dims[i], num_heads[i], window_size[i], res[i], enc_rates[i], False)
                                     for i in range(n))
        self.merges = nn.ModuleList(Merge(dims[i]) for i in range(n - 1))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        dec_rates = drop_path_rates([depths[i] for i in range(n - 2, -1, -1)], drop_path_rate)[::-1]
        self.expands = nn.ModuleList(Expand(dims[i]) for i in range(n - 1))
        self.decoder = nn.ModuleList(stage_blocks(dims[i], num_heads[i], window_size[i], res[i], dec_rates[i], True)
                                     for i in range(n - 1))
        self.heads = nn.ModuleList(nn.ConvTranspose3d(dims[i], num_classes, tuple(stem_stride), tuple(stem_stride))
                                   for i in range(n - 1))
        self.deep_supervision_scales = [(0.5 ** i,) * 3 for i in range(n - 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> (B, K, *patch), or [(B, K, *patch * scale) per decoder stage, full res first]."""
        x = self.stem(x)
        skips = []
        for i, blocks in enumerate(self.encoder):
            for block in blocks:
                x = block(x)
            skips.append(self.norms[i](x))
            if i < len(self.merges):
                x = self.merges[i](x)
        x = skips[-1]
        outputs = []
        for i in range(len(self.decoder) - 1, -1, -1):
            up = self.expands[i](x)
            x = self.decoder[i][0](skips[i], query=up)
            for block in self.decoder[i][1:]:
                x = block(x)
            if i == 0 or (self.deep_supervision and self.training):
                outputs.append(self.heads[i](to_channels_first(x)))
        return outputs[::-1] if self.deep_supervision and self.training else outputs[-1]


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> NNFormer:
    """nnFormer for a plans configuration; kwargs (network_kwargs["nnformer"]): embed_dim (192), depths (2,2,2,2),
    num_heads (6,12,24,48), window_size (4,4,8,4), stem_stride (2,4,4), drop_path_rate (0.2)."""
    check_kwargs(NETWORK_NAME, kwargs, tuple(DEFAULTS))
    options = {**DEFAULTS, **kwargs}
    if not len(options["depths"]) == len(options["num_heads"]) == len(options["window_size"]):
        raise UnetrPPError(f"{NETWORK_NAME}: depths, num_heads and window_size need one entry per stage")
    patch = checked_patch(plans_config, **kwargs)
    return NNFormer(int(config_value(NETWORK_NAME, plans_config, "num_input_channels")),
                    int(config_value(NETWORK_NAME, plans_config, "num_classes")), patch,
                    deep_supervision=deep_supervision, **options)
