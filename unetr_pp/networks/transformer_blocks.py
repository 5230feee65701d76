"""Token-level building blocks shared by the transformer networks (nnFormer, TransBTS, UNesT)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Sequential):
    """Linear dim -> hidden -> GELU -> dropout -> Linear -> dim -> dropout: (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim), nn.Dropout(drop))


def multi_head(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads * d) -> (B, heads, N, d)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, bias: torch.Tensor | None = None,
           attn_drop: float = 0.0) -> torch.Tensor:
    """Softmax(q k^T / sqrt(d) + bias) v per head; q, k, v (B, N, C), bias broadcastable to (B, heads, N, N) -> (B, N, C)."""
    out = F.scaled_dot_product_attention(multi_head(q, heads), multi_head(k, heads), multi_head(v, heads),
                                         attn_mask=bias, dropout_p=attn_drop)
    return out.transpose(1, 2).reshape(q.shape)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, C) (optional additive bias (…, heads, N, N)) -> (B, N, C)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        out = attend(q, k, v, self.heads, bias, self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out))


def channels_last_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a LayerNorm over the channels of (B, C, *s): (B, C, *s) -> (B, C, *s).

    Dimensions are given as positive numbers: the ONNX exporter writes a negative one into Transpose as is,
    which onnxruntime rejects."""
    last = x.dim() - 1
    return norm(x.movedim(1, last)).movedim(last, 1)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, z, y, x) -> (B, z, y, x, C)."""
    return x.permute(0, 2, 3, 4, 1)


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    """(B, z, y, x, C) -> (B, C, z, y, x)."""
    return x.permute(0, 4, 1, 2, 3)


def partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """(B, Z, Y, X, C) -> (B * n_windows, prod(window), C), windows in (z, y, x) raster order."""
    b, z, y, w, c = x.shape
    wz, wy, wx = window
    x = x.reshape(b, z // wz, wz, y // wy, wy, w // wx, wx, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, wz * wy * wx, c)


def unpartition(windows: torch.Tensor, window: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
    """Inverse of `partition`: (B * n_windows, prod(window), C) -> (B, Z, Y, X, C) with shape = (Z, Y, X)."""
    wz, wy, wx = window
    z, y, w = shape
    c = windows.shape[-1]
    x = windows.reshape(-1, z // wz, y // wy, w // wx, wz, wy, wx, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(-1, z, y, w, c)
