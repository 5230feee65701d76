"""3D RepUX-Net (Lee et al., k=21): large depthwise kernels trained through a Bidirectional Fusion Mask (BFM).

Training uses the kernel W * BFM, BFM = alpha / (d + alpha) with d the Euclidean distance of a tap to the
kernel centre. W is an ordinary trained parameter and BFM a constant non-persistent buffer (the public code
re-wraps W every forward, so it never trains and the mask compounds). `reparameterize()` folds BFM, and
optionally the BatchNorm, into plain convolutions for deployment.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unetr_pp.networks.blocks import UXNetFamily, build_ux_family
from unetr_pp.networks.uxnet import LayerScaleResidual, pointwise_mlp

NETWORK_NAME = "3D RepUX-Net"


def fusion_mask(kernel_size: int, alpha: float = 1.0) -> torch.Tensor:
    """BFM (k, k, k): alpha / (d + alpha), d = Euclidean distance of each tap to the kernel centre."""
    centre = (kernel_size - 1) / 2
    axis = torch.arange(kernel_size, dtype=torch.float64) - centre
    dist = torch.sqrt(axis.view(-1, 1, 1) ** 2 + axis.view(1, -1, 1) ** 2 + axis.view(1, 1, -1) ** 2)
    return (alpha / (dist + alpha)).float()


class BFMDepthwiseConv(nn.Module):
    """Depthwise conv with kernel W * BFM: (B, C, *s) -> (B, C, *s) ('same' padding)."""

    def __init__(self, dim: int, kernel_size: int = 21, alpha: float = 1.0) -> None:
        super().__init__()
        conv = nn.Conv3d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.weight = conv.weight
        self.bias = conv.bias
        self.padding = kernel_size // 2
        self.register_buffer("bfm", fusion_mask(kernel_size, alpha), persistent=False)

    def fused_weight(self) -> torch.Tensor:
        """The effective kernel W * BFM: (C, 1, k, k, k)."""
        return self.weight * self.bfm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *s) -> (B, C, *s)."""
        return F.conv3d(x, self.fused_weight(), self.bias, padding=self.padding, groups=self.weight.shape[0])


class RepUXBlock(nn.Module):
    """BFM depthwise conv k21 -> BatchNorm -> 1x1x1 MLP (x4, GELU) -> layer scale -> residual: (B, C, *s) -> same.

    mlp "none" is the block of MASILab's public RepUX-Net code: BFM depthwise conv -> BatchNorm -> GELU, with no
    MLP, layer scale or residual (the form its released checkpoints have).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, kernel_size: int = 21, alpha: float = 1.0,
                 mlp: str = "grouped") -> None:
        super().__init__()
        self.dwconv: nn.Module = BFMDepthwiseConv(dim, kernel_size, alpha)
        self.norm: nn.Module = nn.BatchNorm3d(dim)
        self.plain = mlp == "none"
        if not self.plain:
            self.mlp = pointwise_mlp(dim, mlp)
            self.residual = LayerScaleResidual(dim, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *s) -> (B, C, *s)."""
        if self.plain:
            return F.gelu(self.norm(self.dwconv(x)))
        return self.residual(x, self.mlp(self.norm(self.dwconv(x))))

    @torch.no_grad()
    def reparameterize(self, fold_bn: bool = True) -> None:
        """Replace the BFM conv by a plain conv with kernel W * BFM; with fold_bn also fold the eval-mode BN."""
        if not isinstance(self.dwconv, BFMDepthwiseConv):
            return
        weight, bias = self.dwconv.fused_weight(), self.dwconv.bias
        if fold_bn:
            bn = self.norm
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = weight * scale.view(-1, 1, 1, 1, 1)
            bias = (bias - bn.running_mean) * scale + bn.bias
            self.norm = nn.Identity()
        dim, _, k = weight.shape[:3]
        plain = nn.Conv3d(dim, dim, k, padding=k // 2, groups=dim, device=weight.device, dtype=weight.dtype)
        plain.weight.copy_(weight)
        plain.bias.copy_(bias)
        self.dwconv = plain


def reparameterize(model: nn.Module, fold_bn: bool = True) -> nn.Module:
    """Fold BFM (and BatchNorm with fold_bn) of every RepUX block into plain convs, in place; eval outputs unchanged."""
    for module in model.modules():
        if isinstance(module, RepUXBlock):
            module.reparameterize(fold_bn)
    return model


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> UXNetFamily:
    """3D RepUX-Net for a plans configuration (patch_size divisible by 16, num_input_channels, num_classes).

    kwargs (plans network_kwargs["repuxnet"]): dims, depths, hidden_size, drop_path_rate, kernel_size (21),
    alpha (1.0), mlp ("grouped", "dense" or "none" = the public code's block), reparameterized (False; True
    builds the deployment form of `reparameterize(fold_bn=True)`, whose state_dict has plain kernels, no BN).
    """
    kwargs = dict(kwargs)
    reparameterized = bool(kwargs.pop("reparameterized", False))
    model = build_ux_family(NETWORK_NAME, plans_config, deep_supervision, RepUXBlock, kwargs,
                            ("kernel_size", "alpha", "mlp"))
    return reparameterize(model, fold_bn=True) if reparameterized else model
