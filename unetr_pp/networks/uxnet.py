"""3D UX-Net (Lee et al., k=7): depthwise large-kernel conv blocks in a UNETR-style encoder-decoder."""
from __future__ import annotations

import torch
from torch import nn

from unetr_pp.networks.blocks import DropPath, LayerNormChannelsFirst, UXNetFamily, build_ux_family
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_NAME = "3D UX-Net"
MLP_VARIANTS = ("grouped", "dense")
LAYER_SCALE_INIT = 1e-6


def pointwise_mlp(dim: int, mlp: str) -> nn.Sequential:
    """1x1x1 MLP dim -> 4 dim -> dim with GELU; `grouped` (groups=dim, the public code) or `dense` (the paper)."""
    if mlp not in MLP_VARIANTS:
        raise UnetrPPError(f"{NETWORK_NAME}: mlp {mlp!r} is not one of {list(MLP_VARIANTS)}")
    groups = dim if mlp == "grouped" else 1
    return nn.Sequential(nn.Conv3d(dim, 4 * dim, 1, groups=groups), nn.GELU(),
                         nn.Conv3d(4 * dim, dim, 1, groups=groups))


class LayerScaleResidual(nn.Module):
    """x + DropPath(gamma * f(x)) with a per-channel layer scale gamma: (B, C, *s) -> (B, C, *s)."""

    def __init__(self, dim: int, drop_path: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        """x, f(x): (B, C, *s) -> (B, C, *s)."""
        return x + self.drop_path(self.gamma.view(1, -1, 1, 1, 1) * fx)


class UXBlock(nn.Module):
    """Depthwise conv k7 -> LayerNorm -> 1x1x1 MLP (x4, GELU) -> layer scale -> residual: (B, C, *s) -> (B, C, *s)."""

    def __init__(self, dim: int, drop_path: float = 0.0, kernel_size: int = 7, mlp: str = "grouped") -> None:
        super().__init__()
        self.dwconv = self.depthwise_conv(dim, kernel_size)
        self.norm = LayerNormChannelsFirst(dim)
        self.mlp = pointwise_mlp(dim, mlp)
        self.residual = LayerScaleResidual(dim, drop_path)

    @staticmethod
    def depthwise_conv(dim: int, kernel_size: int) -> nn.Module:
        """The block's spatial mixing: a 'same'-padded depthwise conv (B, C, *s) -> (B, C, *s)."""
        return nn.Conv3d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *s) -> (B, C, *s)."""
        return self.residual(x, self.mlp(self.norm(self.dwconv(x))))


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> UXNetFamily:
    """3D UX-Net for a plans configuration (patch_size divisible by 16, num_input_channels, num_classes).

    kwargs (plans network_kwargs["uxnet"]): dims, depths, hidden_size, drop_path_rate, kernel_size (7),
    mlp ("grouped" as the public code, or "dense" as the paper's FLOPs).
    """
    return build_ux_family(NETWORK_NAME, plans_config, deep_supervision, UXBlock, kwargs, ("kernel_size", "mlp"))
