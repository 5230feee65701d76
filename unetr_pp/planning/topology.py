"""Generic UNet topology from spacing and patch size (nnU-Net `get_pool_and_conv_props`) and the
feature-map memory estimate of nnU-Net v2's PlainConvUNet used to size patches and batches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_FEATURE_MAP_EDGE = 4
BASE_FEATURES = 32
MAX_FEATURES_3D = 320
CONVS_PER_STAGE = 2


@dataclass(frozen=True)
class Topology:
    """Pooling per axis, nnU-Net v1 style pool kernels (one per pooling), conv kernels (one per stage)."""

    num_pool_per_axis: tuple[int, ...]
    pool_op_kernel_sizes: tuple[tuple[int, ...], ...]
    conv_kernel_sizes: tuple[tuple[int, ...], ...]
    patch_size: tuple[int, ...]

    @property
    def divisor(self) -> tuple[int, ...]:
        """What every patch axis must be divisible by (2 ** pools per axis)."""
        return tuple(int(2 ** n) for n in self.num_pool_per_axis)


def pad_shape(shape: Sequence[int], divisor: Sequence[int]) -> tuple[int, ...]:
    """Round every axis of `shape` up to a multiple of `divisor`."""
    return tuple(int(np.ceil(s / d) * d) for s, d in zip(shape, divisor))


def get_pool_and_conv_props(
    spacing: Sequence[float], patch_size: Sequence[int], min_feature_map_size: int = MIN_FEATURE_MAP_EDGE
) -> Topology:
    """nnU-Net's rule: pool an axis while its map stays >= 2 * min size and its spacing is within 2x of the
    finest pooled one (a lone axis needs >= 3 * min size); conv kernel 1 until the axis' spacing is within
    2x of the finest, then 3. The patch is padded to a multiple of 2 ** pools per axis."""
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    current_size = [float(s) for s in patch_size]
    num_pool = [0] * dim
    kernel = [1] * dim
    pools, convs = [], []
    while True:
        valid = [i for i in range(dim) if current_size[i] >= 2 * min_feature_map_size]
        if not valid:
            break
        finest = min(current_spacing[i] for i in valid)
        valid = [i for i in valid if current_spacing[i] / finest < 2]
        if len(valid) == 1 and current_size[valid[0]] < 3 * min_feature_map_size:
            break
        if not valid:
            break
        for d in range(dim):
            if kernel[d] != 3 and current_spacing[d] / min(current_spacing) < 2:
                kernel[d] = 3
        pool = [1] * dim
        for v in valid:
            pool[v] = 2
            num_pool[v] += 1
            current_spacing[v] *= 2
            current_size[v] = np.ceil(current_size[v] / 2)
        pools.append(tuple(pool))
        convs.append(tuple(kernel))
    convs.append((3,) * dim)
    divisor = [2 ** n for n in num_pool]
    return Topology(tuple(num_pool), tuple(pools), tuple(convs), pad_shape(patch_size, divisor))


def conv_kernels_for_pooling(spacing: Sequence[float], pools: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Conv kernels (one per stage) for a given pooling list, by the same spacing rule."""
    current = [float(s) for s in spacing]
    kernel = [1] * len(spacing)
    convs = []
    for pool in pools:
        for d in range(len(spacing)):
            if kernel[d] != 3 and current[d] / min(current) < 2:
                kernel[d] = 3
        convs.append(tuple(kernel))
        current = [s * p for s, p in zip(current, pool)]
    convs.append((3,) * len(spacing))
    return tuple(convs)


def plans_topology(patch_size: Sequence[int], spacing: Sequence[float] | None = None
                   ) -> tuple[list[list[int]], list[list[int]]]:
    """(pool_op_kernel_sizes, conv_kernel_sizes) as plans lists for a patch, by get_pool_and_conv_props
    (isotropic spacing when none is given)."""
    topo = get_pool_and_conv_props([1.0] * len(patch_size) if spacing is None else spacing, patch_size)
    return [list(p) for p in topo.pool_op_kernel_sizes], [list(k) for k in topo.conv_kernel_sizes]


def features_per_stage(num_stages: int) -> list[int]:
    """min(32 * 2 ** i, 320) per stage."""
    return [min(BASE_FEATURES * 2 ** i, MAX_FEATURES_3D) for i in range(num_stages)]


def feature_map_size(patch_size: Sequence[int], pools: Sequence[Sequence[int]], num_classes: int) -> int:
    """Voxels of all conv outputs of nnU-Net v2's PlainConvUNet (2 convs per stage, no deep supervision).

    Equals `PlainConvUNet.compute_conv_feature_map_size(patch_size)` of dynamic_network_architectures.
    """
    features = features_per_stage(len(pools) + 1)
    sizes = [list(patch_size)]
    for pool in pools:
        sizes.append([s // p for s, p in zip(sizes[-1], pool)])
    volumes = [int(np.prod(s, dtype=np.int64)) for s in sizes]
    total = sum(CONVS_PER_STAGE * f * v for f, v in zip(features, volumes))
    for stage in range(len(pools) - 1, -1, -1):  # decoder: transposed conv + convs at each skip resolution
        total += (1 + CONVS_PER_STAGE) * features[stage] * volumes[stage]
    return total + num_classes * volumes[0]
