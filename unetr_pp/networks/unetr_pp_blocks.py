"""UNETR++ building blocks: efficient paired attention, the EPA transformer block, encoder and up-block.

Module and attribute names follow the official UNETR++ code (commit dcba1c6) so that its checkpoints load
with strict key matching; see docs/unetr_pp_network.md.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as nnf
from monai.networks.blocks.dynunet_block import UnetResBlock, get_conv_layer
from torch import nn

EF_MODES = ("shared", "separate", "ef_param")


class EPA(nn.Module):
    """Efficient paired attention on tokens (B, N, C): shared Q/K, channel attention + spatial attention.

    ef_mode: "shared" (one nn.Linear(N, P) registered as both E and F), "separate" (two Linears), or
    "ef_param" (one Parameter EF [N, P] for both, no output projections, branches fused by sum).
    """

    def __init__(self, tokens: int, hidden_size: int, proj_size: int, num_heads: int, ef_mode: str,
                 attn_dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ef_mode = ef_mode
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.temperature2 = nn.Parameter(torch.ones(num_heads, 1, 1))
        if ef_mode == "ef_param":
            bound = 1.0 / math.sqrt(proj_size)
            self.EF = nn.Parameter(torch.empty(tokens, proj_size).uniform_(-bound, bound))
        self.qkvv = nn.Linear(hidden_size, hidden_size * 4, bias=False)
        if ef_mode == "shared":
            self.E = self.F = nn.Linear(tokens, proj_size)
        elif ef_mode == "separate":
            self.E = nn.Linear(tokens, proj_size)
            self.F = nn.Linear(tokens, proj_size)
        self.attn_drop = nn.Dropout(attn_dropout)
        self.attn_drop_2 = nn.Dropout(attn_dropout)
        if ef_mode != "ef_param":
            self.out_proj = nn.Linear(hidden_size, hidden_size // 2)
            self.out_proj2 = nn.Linear(hidden_size, hidden_size // 2)

    def _project_keys(self, k: torch.Tensor) -> torch.Tensor:
        """(B, h, d, N) -> (B, h, d, P) with E (or EF)."""
        return k @ self.EF if self.ef_mode == "ef_param" else self.E(k)

    def _project_values(self, v: torch.Tensor) -> torch.Tensor:
        """(B, h, d, N) -> (B, h, d, P) with F (or EF)."""
        return v @ self.EF if self.ef_mode == "ef_param" else self.F(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, C) -> (B, N, C)."""
        b, n, c = x.shape
        heads = self.num_heads
        # (B, N, 4, h, d) -> 4 x (B, h, d, N)
        q, k, v_ca, v_sa = self.qkvv(x).reshape(b, n, 4, heads, c // heads).permute(2, 0, 3, 4, 1)
        # E/F act on the un-normalised k and v_SA, q/k are normalised along the token axis afterwards.
        k_proj = self._project_keys(k)
        v_sa_proj = self._project_values(v_sa)
        q = nnf.normalize(q, dim=-1)
        k = nnf.normalize(k, dim=-1)

        attn_ca = self.attn_drop(((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1))
        x_ca = (attn_ca @ v_ca).permute(0, 3, 1, 2).reshape(b, n, c)

        attn_sa = self.attn_drop_2(((q.transpose(-2, -1) @ k_proj) * self.temperature2).softmax(dim=-1))
        # Official quirk kept for checkpoint compatibility: (B, h, N, d) is permuted to (B, d, h, N) and
        # flattened into (B, N, C), which mixes tokens and channels (the paper concatenates heads instead).
        x_sa = (attn_sa @ v_sa_proj.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(b, n, c)

        if self.ef_mode == "ef_param":
            return x_ca + x_sa
        return torch.cat((self.out_proj(x_sa), self.out_proj2(x_ca)), dim=-1)


class TransformerBlock(nn.Module):
    """EPA transformer block on a feature map (B, C, *grid) with prod(grid) = tokens; returns the same shape."""

    def __init__(self, tokens: int, hidden_size: int, proj_size: int, num_heads: int, ef_mode: str,
                 conv52: bool, attn_dropout: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(1e-6 * torch.ones(hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, hidden_size))
        self.norm = nn.LayerNorm(hidden_size)
        self.epa_block = EPA(tokens, hidden_size, proj_size, num_heads, ef_mode, attn_dropout)
        self.conv51 = UnetResBlock(3, hidden_size, hidden_size, kernel_size=3, stride=1, norm_name="batch")
        if conv52:
            self.conv52 = UnetResBlock(3, hidden_size, hidden_size, kernel_size=3, stride=1, norm_name="batch")
        self.conv8 = nn.Sequential(nn.Dropout3d(0.1, False), nn.Conv3d(hidden_size, hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, z, y, x) -> (B, C, z, y, x)."""
        b, c, *grid = x.shape
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embed
        tokens = tokens + self.gamma * self.epa_block(self.norm(tokens))
        skip = tokens.transpose(1, 2).reshape(b, c, *grid)
        y = self.conv51(skip)
        if hasattr(self, "conv52"):
            y = self.conv52(y)
        return skip + self.conv8(y)


def transformer_stage(depth: int, tokens: int, hidden_size: int, proj_size: int, num_heads: int, ef_mode: str,
                      conv52: bool, attn_dropout: float) -> nn.Sequential:
    """`depth` TransformerBlocks in sequence, all at the same resolution (tokens) and width."""
    return nn.Sequential(*[
        TransformerBlock(tokens, hidden_size, proj_size, num_heads, ef_mode, conv52, attn_dropout)
        for _ in range(depth)
    ])


def _downsample(in_channels: int, out_channels: int, stride: Sequence[int], groups: int) -> nn.Sequential:
    """Conv with kernel = stride (no bias) + GroupNorm: (B, in, *s) -> (B, out, *s / stride)."""
    return nn.Sequential(
        get_conv_layer(3, in_channels, out_channels, kernel_size=stride, stride=stride, conv_only=True),
        nn.GroupNorm(groups, out_channels),
    )


class UnetrPPEncoder(nn.Module):
    """Hierarchical encoder: stem (stride `stem_stride`) + 3 downsamplings 2x2x2, each followed by EPA blocks.

    Returns the four stage outputs (B, dims[i], *grid_i), grid_i = patch / stem_stride / 2**i.
    """

    def __init__(self, in_channels: int, dims: Sequence[int], depths: Sequence[int], proj_sizes: Sequence[int],
                 tokens: Sequence[int], num_heads: int, stem_stride: Sequence[int], ef_mode: str, conv52: bool,
                 attn_dropout: float) -> None:
        super().__init__()
        # The official stem GroupNorm uses num_groups = input channels (1, or 4 for tumor).
        self.downsample_layers = nn.ModuleList([_downsample(in_channels, dims[0], stem_stride,
                                                            math.gcd(in_channels, dims[0]))])
        for i in range(len(dims) - 1):
            self.downsample_layers.append(_downsample(dims[i], dims[i + 1], (2, 2, 2), dims[i]))
        self.stages = nn.ModuleList([
            transformer_stage(depths[i], tokens[i], dims[i], proj_sizes[i], num_heads, ef_mode, conv52, attn_dropout)
            for i in range(len(dims))
        ])
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, *patch) -> [(B, dims[i], *grid_i) for each stage]."""
        hidden_states = []
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
            hidden_states.append(x)
        return hidden_states


class UnetrPPUpBlock(nn.Module):
    """Transposed conv (kernel = stride = `upsample`, no bias), add the skip, then `block` (EPA stage or res block)."""

    def __init__(self, in_channels: int, out_channels: int, upsample: Sequence[int], block: nn.Module) -> None:
        super().__init__()
        self.transp_conv = get_conv_layer(3, in_channels, out_channels, kernel_size=upsample, stride=upsample,
                                          conv_only=True, is_transposed=True)
        self.decoder_block = nn.ModuleList([block])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(B, in, *s), skip (B, out, *s * upsample) -> (B, out, *s * upsample)."""
        return self.decoder_block[0](self.transp_conv(x) + skip)
