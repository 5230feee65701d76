"""3D DeformUX-Net (Lee et al.): depthwise deformable conv k3 in pure PyTorch (CPU and CUDA) in UX-Net blocks."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from unetr_pp.networks.blocks import UXNetFamily, build_ux_family
from unetr_pp.networks.uxnet import UXBlock

NETWORK_NAME = "3D DeformUX-Net"


def _voxel_index(size: int, axis: int, like: torch.Tensor) -> torch.Tensor:
    """Voxel indices 0..size-1 shaped to broadcast along `axis` (1, 2 or 3) of a (B, D, H, W) tensor."""
    shape = [1, 1, 1, 1]
    shape[axis] = size
    return torch.arange(size, device=like.device, dtype=like.dtype).view(shape)


def deform_depthwise_conv3d(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor,
                            bias: torch.Tensor | None = None) -> torch.Tensor:
    """Depthwise deformable conv, 'same' padding, zeros outside: x (B, C, D, H, W), weight (C, 1, k, k, k),
    offsets (B, 3 k^3, D, H, W) as (dz, dy, dx) per tap in kernel raster order -> (B, C, D, H, W).

    Each tap samples x trilinearly at voxel + (tap - centre) + offset (grid_sample, align_corners=False, so
    a whole-voxel position samples exactly that voxel) and the k^3 weighted samples are summed one tap at a
    time (no k^3-times copy of x). Zero offsets give the depthwise conv3d.
    """
    b, c, *size = x.shape
    k = weight.shape[-1]
    centre = (k - 1) // 2
    index = [_voxel_index(n, axis + 1, x) for axis, n in enumerate(size)]
    out = None
    for t, tap in enumerate(itertools.product(range(k), repeat=3)):
        # grid_sample wants (x, y, z) order in [-1, 1]; index i maps to (2 i + 1) / n - 1
        coords = [(2 * (index[a] + (tap[a] - centre) + offsets[:, 3 * t + a]) + 1) / size[a] - 1 for a in range(3)]
        grid = torch.stack(coords[::-1], dim=-1)
        sample = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        term = sample * weight[:, 0, tap[0], tap[1], tap[2]].view(1, c, 1, 1, 1)
        out = term if out is None else out + term
    if bias is not None:
        out = out + bias.view(1, c, 1, 1, 1)
    return out


class DeformableDepthwiseConv(nn.Module):
    """Depthwise deformable conv k: offsets (3 per tap) from a zero-initialised 1x1x1 conv, no modulation.

    (B, C, *s) -> (B, C, *s).
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.offset = nn.Conv3d(dim, 3 * kernel_size ** 3, 1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        conv = nn.Conv3d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *s) -> (B, C, *s)."""
        return deform_depthwise_conv3d(x, self.weight, self.offset(x), self.bias)


class DeformUXBlock(UXBlock):
    """Deformable depthwise conv k3 -> LayerNorm -> dense 1x1x1 MLP (x4, GELU) -> layer scale -> residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, kernel_size: int = 3, mlp: str = "dense") -> None:
        super().__init__(dim, drop_path, kernel_size, mlp)

    @staticmethod
    def depthwise_conv(dim: int, kernel_size: int) -> nn.Module:
        """Deformable depthwise conv (B, C, *s) -> (B, C, *s)."""
        return DeformableDepthwiseConv(dim, kernel_size)


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> UXNetFamily:
    """3D DeformUX-Net for a plans configuration (patch_size divisible by 16, num_input_channels, num_classes).

    kwargs (plans network_kwargs["deformuxnet"]): dims, depths, hidden_size, drop_path_rate, kernel_size (3),
    mlp ("dense" as the paper, or "grouped").
    """
    return build_ux_family(NETWORK_NAME, plans_config, deep_supervision, DeformUXBlock, kwargs, ("kernel_size", "mlp"))
