"""UNETR++ (Shaker et al.) for any patch size divisible by its total stride, with the official variants as options.

`build(plans_config, deep_supervision, **network_kwargs)` is the registry entry point. The official
per-dataset differences (E/F sharing, extra conv52, stem stride) are options, see `VARIANTS`.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock, UnetResBlock
from torch import nn

from unetr_pp.networks.unetr_pp_blocks import EF_MODES, UnetrPPEncoder, UnetrPPUpBlock, transformer_stage
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_NAME = "UNETR++"

# Official per-dataset code paths as options: how E/F are held and whether blocks have the extra conv52.
VARIANTS: dict[str, dict] = {
    "synapse": {"ef_mode": "shared", "conv52": False},
    "acdc": {"ef_mode": "separate", "conv52": True},
    "lung": {"ef_mode": "separate", "conv52": True},
    "tumor": {"ef_mode": "ef_param", "conv52": False},
}
DEFAULT_VARIANT = "synapse"
DECODER_DEPTH = 3
ATTENTION_DROPOUT = 0.15
BUILD_OPTIONS = ("variant", "stem_stride", "feature_size", "dims", "depths", "num_heads", "proj_sizes",
                 "decoder_proj_size")


def check_patch_size(patch_size: Sequence[int], stem_stride: Sequence[int]) -> tuple[int, ...]:
    """The patch as a tuple; raises UnetrPPError unless every axis is divisible by stem_stride * 8."""
    divisor = tuple(int(s) * 8 for s in stem_stride)
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or len(divisor) != 3:
        raise UnetrPPError(f"{NETWORK_NAME}: patch size {list(patch)} and stem stride {list(stem_stride)} "
                           "must both have 3 axes (z, y, x)")
    if any(p <= 0 or p % d for p, d in zip(patch, divisor)):
        raise UnetrPPError(f"{NETWORK_NAME}: patch size {list(patch)} is not divisible by {list(divisor)} "
                           f"(stem stride {list(stem_stride)} x 8, per axis); choose a patch that is a multiple "
                           "of it or another stem_stride")
    return patch


def stem_stride_from_pooling(pool_op_kernel_sizes: Sequence[Sequence[int]], ndim: int = 3) -> tuple[int, ...]:
    """Per axis 2 ** clip(n_pool_axis - 3, 0, 2), n_pool_axis = pooling ops (kernel > 1) on that axis."""
    pools = np.array(pool_op_kernel_sizes, dtype=int).reshape(-1, ndim)
    n_pool = (pools > 1).sum(axis=0)
    return tuple(int(2 ** np.clip(n - 3, 0, 2)) for n in n_pool)


class UNETRPP(nn.Module):
    """UNETR++: input (B, in_channels, *patch_size) -> logits (B, out_channels, *patch_size).

    Train mode with `deep_supervision` returns [out1 (full res), out2 (patch / stem_stride),
    out3 (patch / stem_stride / 2)]; otherwise out1 only. Token counts, positional embeddings and E/F
    in-features are derived from `patch_size`, which must be divisible by stem_stride * 8 per axis.
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size: Sequence[int],
                 stem_stride: Sequence[int] = (2, 4, 4), ef_mode: str = "shared", conv52: bool = False,
                 feature_size: int = 16, dims: Sequence[int] = (32, 64, 128, 256), depths: Sequence[int] = (3, 3, 3, 3),
                 num_heads: int = 4, proj_sizes: Sequence[int] = (64, 64, 64, 32), decoder_proj_size: int = 64,
                 deep_supervision: bool = True) -> None:
        super().__init__()
        self._check_options(ef_mode, dims, depths, proj_sizes, num_heads)
        self.patch_size = check_patch_size(patch_size, stem_stride)
        self.stem_stride = tuple(int(s) for s in stem_stride)
        self.in_channels = int(in_channels)
        self.deep_supervision = bool(deep_supervision)
        grid0 = [p // s for p, s in zip(self.patch_size, self.stem_stride)]
        tokens = [math.prod(g // 2 ** i for g in grid0) for i in range(4)]
        self.tokens = tokens
        self.deep_supervision_scales = [
            (1.0, 1.0, 1.0),
            tuple(1.0 / s for s in self.stem_stride),
            tuple(1.0 / (2 * s) for s in self.stem_stride),
        ]

        def decoder_stage(stage: int) -> nn.Sequential:
            return transformer_stage(DECODER_DEPTH, tokens[stage], dims[stage], decoder_proj_size, num_heads,
                                     ef_mode, conv52, ATTENTION_DROPOUT)

        self.unetr_pp_encoder = UnetrPPEncoder(in_channels, dims, depths, proj_sizes, tokens, num_heads,
                                               self.stem_stride, ef_mode, conv52, ATTENTION_DROPOUT)
        self.encoder1 = UnetResBlock(3, in_channels, feature_size, kernel_size=3, stride=1, norm_name="instance")
        self.decoder5 = UnetrPPUpBlock(dims[3], dims[2], (2, 2, 2), decoder_stage(2))
        self.decoder4 = UnetrPPUpBlock(dims[2], dims[1], (2, 2, 2), decoder_stage(1))
        self.decoder3 = UnetrPPUpBlock(dims[1], dims[0], (2, 2, 2), decoder_stage(0))
        self.decoder2 = UnetrPPUpBlock(dims[0], feature_size, self.stem_stride,
                                       UnetResBlock(3, feature_size, feature_size, kernel_size=3, stride=1,
                                                    norm_name="instance"))
        self.out1 = UnetOutBlock(3, feature_size, out_channels)
        self.out2 = UnetOutBlock(3, dims[0], out_channels)
        self.out3 = UnetOutBlock(3, dims[1], out_channels)

    @staticmethod
    def _check_options(ef_mode: str, dims: Sequence[int], depths: Sequence[int], proj_sizes: Sequence[int],
                       num_heads: int) -> None:
        if ef_mode not in EF_MODES:
            raise UnetrPPError(f"{NETWORK_NAME}: ef_mode {ef_mode!r} is not one of {list(EF_MODES)}")
        if not len(dims) == len(depths) == len(proj_sizes) == 4:
            raise UnetrPPError(f"{NETWORK_NAME}: dims, depths and proj_sizes need 4 entries each "
                               f"(got {list(dims)}, {list(depths)}, {list(proj_sizes)})")
        bad = [d for d in dims if d % (2 * num_heads)]
        if bad:
            raise UnetrPPError(f"{NETWORK_NAME}: every entry of dims must be divisible by 2 x num_heads = "
                               f"{2 * num_heads} (got {list(dims)})")

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.patch_size:
            raise UnetrPPError(f"{NETWORK_NAME} was built for input (B, {self.in_channels}, "
                               f"{', '.join(map(str, self.patch_size))}) but got {tuple(x.shape)}; its positional "
                               "embeddings and E/F projections depend on the patch size")

    def _decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C_in, *patch) -> features for out1 (full res), out2 (stage 0 grid), out3 (stage 1 grid)."""
        self._check_input(x)
        enc1, enc2, enc3, enc4 = self.unetr_pp_encoder(x)
        dec3 = self.decoder5(enc4, enc3)
        dec2 = self.decoder4(dec3, enc2)
        dec1 = self.decoder3(dec2, enc1)
        return self.decoder2(dec1, self.encoder1(x)), dec1, dec2

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All three heads in any mode: [(B, K, *patch), (B, K, *patch/stem), (B, K, *patch/stem/2)]."""
        full, dec1, dec2 = self._decode(x)
        return [self.out1(full), self.out2(dec1), self.out3(dec2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> logits (B, K, *patch), or the deep-supervision list in train mode."""
        if self.deep_supervision and self.training:
            return self.forward_heads(x)
        return self.out1(self._decode(x)[0])


def validate(plans_config: Mapping, **kwargs) -> list[str]:
    """Problems of UNETR++ settings: a stem stride of 3 positive integers that, x 8, divides the patch."""
    stem, patch = kwargs.get("stem_stride"), plans_config.get("patch_size")
    if stem is None or not isinstance(patch, list):
        return []
    if not (isinstance(stem, list) and len(stem) == 3 and all(isinstance(v, int) and v > 0 for v in stem)):
        return [f"network_kwargs.unetr_pp.stem_stride must be 3 positive integers, got {stem!r}"]
    if any(p % (8 * s) for p, s in zip(patch, stem)):
        return [f"patch_size {patch} is not divisible by the UNETR++ total stride {[8 * s for s in stem]} "
                f"(stem_stride {stem} x 8)"]
    return []


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> UNETRPP:
    """UNETR++ for a plans configuration (patch_size, num_input_channels, num_classes, pool_op_kernel_sizes).

    kwargs come from plans_config["network_kwargs"]["unetr_pp"]: `variant` (synapse | acdc | lung | tumor,
    default synapse), `stem_stride` (default derived from pool_op_kernel_sizes), and optionally
    feature_size, dims, depths, num_heads, proj_sizes, decoder_proj_size.
    """
    unknown = sorted(set(kwargs) - set(BUILD_OPTIONS))
    if unknown:
        raise UnetrPPError(f"{NETWORK_NAME}: unknown network_kwargs {unknown}; allowed: {list(BUILD_OPTIONS)}")
    variant = kwargs.pop("variant", DEFAULT_VARIANT)
    if variant not in VARIANTS:
        raise UnetrPPError(f"{NETWORK_NAME}: unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    needed = ["patch_size", "num_input_channels", "num_classes"]
    stem_stride = kwargs.pop("stem_stride", None)
    if stem_stride is None:
        needed.append("pool_op_kernel_sizes")
    missing = [k for k in needed if k not in plans_config]
    if missing:
        raise UnetrPPError(f"{NETWORK_NAME}: the plans configuration lacks {', '.join(missing)}")
    if stem_stride is None:
        stem_stride = stem_stride_from_pooling(plans_config["pool_op_kernel_sizes"], len(plans_config["patch_size"]))
    return UNETRPP(in_channels=int(plans_config["num_input_channels"]), out_channels=int(plans_config["num_classes"]),
                   patch_size=plans_config["patch_size"], stem_stride=stem_stride, deep_supervision=deep_supervision,
                   **VARIANTS[variant], **kwargs)
