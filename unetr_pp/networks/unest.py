"""UNesT (Yu et al.): a 3D nested hierarchical transformer (NesT) encoder with a UNETR-style CNN decoder.

Patch embedding conv k4 s4 -> 3 NesT levels: transformer layers attend inside blocks (4x4x4, 2x2x2, 1 block per
patch), each level after the first starts with conv k3 + LayerNorm + max-pool k3 s2 (block aggregation) ->
final LayerNorm -> conv k3 s2 (PReLU, InstanceNorm) bottleneck -> five MONAI UnetrUpBlocks with skips from the
embedding, every level and a residual conv block on the input -> 1x1 conv. Decoder widths are w, 2w, ..., 32w with
w = embed_dims[-1] / 16. Variants: `base` (embed 128/256/512, heads 4/8/16, depths 2/2/8, the MONAI bundle) and
`large` (embed 192/384/768, heads 6/12/24, depths 2/2/20; docs/networks.md). One head: no deep supervision.
"""
from __future__ import annotations

from typing import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.blocks.dynunet_block import UnetOutBlock, UnetResBlock, get_conv_layer
from monai.networks.blocks.unetr_block import UnetrUpBlock
from torch import nn

from unetr_pp.networks.blocks import (
    DropPath,
    SingleOutputMixin,
    check_kwargs,
    check_patch_divisible,
    config_value,
    drop_path_rates,
    problems_of,
)
from unetr_pp.networks.transformer_blocks import (
    Mlp,
    SelfAttention,
    channels_last_norm,
    partition,
    to_channels_first,
    to_tokens,
    unpartition,
)
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_NAME = "UNesT"
PATCH = 4
LEVELS = 3
DIVISOR = 32  # patch embedding 4 x blocks 4 per axis x an even bottleneck block for the stride-2 conv
VARIANTS = {
    "base": {"embed_dims": (128, 256, 512), "num_heads": (4, 8, 16), "depths": (2, 2, 8)},
    "large": {"embed_dims": (192, 384, 768), "num_heads": (6, 12, 24), "depths": (2, 2, 20)},
}
OPTIONS = ("variant", "embed_dims", "num_heads", "depths", "drop_path_rate")
DROP_PATH_RATE = 0.5
LN_EPS = 1e-6


def checked_patch(plans_config: dict, **_kwargs) -> tuple[int, ...]:
    """The plans patch as a 3-tuple, or UnetrPPError naming UNesT, the patch and the divisor (32) it needs;
    32x32x32 is refused too: its 1x1x1 bottleneck cannot be instance-normalised in training."""
    patch = check_patch_divisible(NETWORK_NAME, config_value(NETWORK_NAME, plans_config, "patch_size"),
                                  (DIVISOR,) * 3)
    if patch == (DIVISOR,) * 3:
        raise UnetrPPError(f"{NETWORK_NAME}: patch size {list(patch)} leaves a 1x1x1 bottleneck that instance "
                           f"normalisation cannot train on; use a multiple of {DIVISOR} larger on at least one axis")
    return patch


def validate(plans_config: dict, **kwargs) -> list[str]:
    """Problems of this network's settings for the configuration (the registry's check before building)."""
    return problems_of(checked_patch, plans_config, **kwargs)


class NestLayer(nn.Module):
    """Pre-norm transformer layer attending inside each block: (B*T, N, C) -> (B*T, N, C)."""

    def __init__(self, dim: int, heads: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B*T, N, C) -> (B*T, N, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BlockAggregation(nn.Module):
    """conv k3 -> channel LayerNorm -> max-pool k3 s2: (B, Cin, *s) -> (B, Cout, *s / 2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.LayerNorm(cout, eps=LN_EPS)
        self.pool = nn.MaxPool3d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, *s) -> (B, Cout, *s / 2)."""
        return self.pool(channels_last_norm(self.norm, self.conv(x)))


class NestLevel(nn.Module):
    """[block aggregation] -> + position embedding per block -> transformer layers: (B, C, *s) -> (B, C', *s')."""

    def __init__(self, grid: Sequence[int], block: Sequence[int], dim: int, prev_dim: int | None, heads: int,
                 rates: Sequence[float]) -> None:
        super().__init__()
        self.block = tuple(block)
        n_blocks = 1
        for g, b in zip(grid, block):
            n_blocks *= g // b
        self.pool = nn.Identity() if prev_dim is None else BlockAggregation(prev_dim, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_blocks, block[0] * block[1] * block[2], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2, b=2)
        self.layers = nn.Sequential(*(NestLayer(dim, heads, r) for r in rates))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_prev, *s) -> (B, C, *s') with s' = s (first level) or s / 2."""
        x = to_tokens(self.pool(x))
        shape = x.shape[1:4]
        blocks = partition(x, self.block)
        blocks = (blocks.reshape(x.shape[0], -1, *blocks.shape[1:]) + self.pos_embed).flatten(0, 1)
        return to_channels_first(unpartition(self.layers(blocks), self.block, shape))


class NestEncoder(nn.Module):
    """(B, C_in, *p) -> (normalised last level (B, e2, *p/16), [embedding p/4, level outputs p/4, p/8, p/16])."""

    def __init__(self, in_channels: int, patch_size: Sequence[int], embed_dims: Sequence[int],
                 num_heads: Sequence[int], depths: Sequence[int], drop_path_rate: float) -> None:
        super().__init__()
        grid = [p // PATCH for p in patch_size]
        block = [g // 2 ** (LEVELS - 1) for g in grid]
        self.embed = nn.Conv3d(in_channels, embed_dims[0], PATCH, PATCH)
        rates = drop_path_rates(depths, drop_path_rate)
        self.levels = nn.ModuleList(
            NestLevel([g // 2 ** i for g in grid], block, embed_dims[i], embed_dims[i - 1] if i else None,
                      num_heads[i], rates[i]) for i in range(LEVELS))
        self.norm = nn.LayerNorm(embed_dims[-1], eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, C_in, *p) -> (LN(last level), [embedding, level 0, level 1, level 2])."""
        x = self.embed(x)
        hidden = [x]
        for level in self.levels:
            x = level(x)
            hidden.append(x)
        return channels_last_norm(self.norm, x), hidden


class UNesT(SingleOutputMixin, nn.Module):
    """UNesT: (B, C_in, *patch) -> logits (B, K, *patch); patch divisible by 32 per axis."""

    def __init__(self, in_channels: int, num_classes: int, patch_size: Sequence[int], embed_dims: Sequence[int],
                 num_heads: Sequence[int], depths: Sequence[int], drop_path_rate: float = DROP_PATH_RATE,
                 deep_supervision: bool = False) -> None:
        super().__init__()
        self.deep_supervision = bool(deep_supervision)
        w = embed_dims[-1] // 16
        self.nest = NestEncoder(in_channels, patch_size, embed_dims, num_heads, depths, drop_path_rate)

        def res(cin: int, cout: int) -> UnetResBlock:
            return UnetResBlock(3, cin, cout, kernel_size=3, stride=1, norm_name="instance")

        def up(cin: int, cout: int) -> UnetrUpBlock:
            return UnetrUpBlock(3, cin, cout, kernel_size=3, upsample_kernel_size=2, norm_name="instance",
                                res_block=True)

        self.encoder1 = res(in_channels, w)
        self.encoder2 = nn.Sequential(
            get_conv_layer(3, embed_dims[0], 2 * w, kernel_size=2, stride=2, conv_only=True, is_transposed=True),
            get_conv_layer(3, 2 * w, 2 * w, kernel_size=1, stride=1, conv_only=True, is_transposed=True))
        self.encoder3 = res(embed_dims[0], 4 * w)
        self.encoder4 = res(embed_dims[1], 8 * w)
        self.bottleneck = Convolution(3, 16 * w, 32 * w, strides=2, adn_ordering="ADN", dropout=0.0)
        self.decoders = nn.ModuleList([up(32 * w, 16 * w), up(16 * w, 8 * w), up(8 * w, 4 * w), up(4 * w, 2 * w),
                                       up(2 * w, w)])
        self.out = UnetOutBlock(3, w, num_classes)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> (B, K, *patch), or [that] in train mode with deep supervision."""
        x, (embedding, level0, level1, level2) = self.nest(x_in)
        skips = [level2, self.encoder4(level1), self.encoder3(level0), self.encoder2(embedding), self.encoder1(x_in)]
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, skips):
            x = decoder(x, skip)
        return self.contract_output(self.out(x))


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> UNesT:
    """UNesT for a plans configuration; kwargs (network_kwargs["unest_base" | "unest_large"]): variant (base |
    large, set by the registry name), embed_dims, num_heads, depths (3 levels each), drop_path_rate (0.5)."""
    check_kwargs(NETWORK_NAME, kwargs, OPTIONS)
    variant = kwargs.pop("variant", "base")
    if variant not in VARIANTS:
        raise UnetrPPError(f"{NETWORK_NAME}: variant {variant!r} is not one of {list(VARIANTS)}")
    options = {**VARIANTS[variant], **kwargs}
    if any(len(options[k]) != LEVELS for k in VARIANTS["base"]) or options["embed_dims"][-1] % 16:
        raise UnetrPPError(f"{NETWORK_NAME}: embed_dims, num_heads, depths need {LEVELS} entries and embed_dims[-1] "
                           f"a multiple of 16 (decoder width embed_dims[-1] / 16); got {options}")
    patch = checked_patch(plans_config)
    return UNesT(int(config_value(NETWORK_NAME, plans_config, "num_input_channels")),
                 int(config_value(NETWORK_NAME, plans_config, "num_classes")), patch,
                 deep_supervision=deep_supervision, **options)
