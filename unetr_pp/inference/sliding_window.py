"""Sliding-window prediction of a preprocessed volume: Gaussian blending, mirror TTA, fold ensembling.

Windows are placed as in nnU-Net (evenly spread, `step_size` = fraction of the patch between window
starts; `overlap` = 1 - step_size as MONAI/UX-Net users know it). Logits of overlapping windows are
blended with a Gaussian importance map centred at voxel n // 2; the blended logits are averaged over the
networks of an ensemble and probabilities are softmax (or sigmoid for region tasks) of that mean (nnU-Net v2).
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from unetr_pp.utilities.errors import UnetrPPError

# a torch module or any callable (B, C, *patch) float32 -> (B, K, *patch) logits, e.g. an onnxruntime session
Network = Callable[[torch.Tensor], torch.Tensor]

ACCUMULATE_CHOICES = ("auto", "device", "cpu")
# Fraction of the free device memory the accumulators may take when accumulate="auto".
DEVICE_MEMORY_FRACTION = 0.5
# Values (K x voxels) per slab when the softmax is written back into the logits (bounds its temporary buffer).
NONLINEARITY_SLAB_VALUES = 2 ** 20


@dataclass(frozen=True)
class SlidingWindowSettings:
    """How to tile and blend: patch (z, y, x), step as a fraction of the patch, TTA axes, batching, accumulation."""

    patch_size: tuple[int, int, int]
    step_size: float = 0.5
    sw_batch_size: int = 4
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    accumulate: str = "auto"
    sigma_scale: float = 0.125

    def __post_init__(self) -> None:
        if len(self.patch_size) != 3 or any(int(p) < 1 for p in self.patch_size):
            raise UnetrPPError(f"patch size {list(self.patch_size)} must be 3 positive integers (z, y, x)")
        if not 0 < self.step_size <= 1:
            raise UnetrPPError(f"step size {self.step_size} must be in (0, 1] (overlap = 1 - step size in [0, 1))")
        if self.sw_batch_size < 1:
            raise UnetrPPError(f"sw_batch_size {self.sw_batch_size} must be at least 1")
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise UnetrPPError(f"mirror axes {list(self.mirror_axes)} must be spatial axes 0, 1, 2 (z, y, x)")
        if self.accumulate not in ACCUMULATE_CHOICES:
            raise UnetrPPError(f"accumulate {self.accumulate!r} must be one of {', '.join(ACCUMULATE_CHOICES)}")


@functools.lru_cache(maxsize=8)
def _gaussian_map_cached(patch_size: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    axes = []
    for n in patch_size:
        x = np.arange(n, dtype=np.float64) - n // 2
        axes.append(np.exp(-0.5 * (x / (n * sigma_scale)) ** 2))
    gaussian = functools.reduce(np.multiply.outer, axes)
    gaussian /= gaussian.max()
    gaussian = gaussian.astype(np.float32)
    gaussian[gaussian == 0] = gaussian[gaussian > 0].min()
    gaussian.setflags(write=False)
    return gaussian


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian weights (z, y, x) float32: centre voxel n // 2 (nnU-Net), sigma = patch * sigma_scale, max 1, no zeros."""
    return _gaussian_map_cached(tuple(int(p) for p in patch_size), float(sigma_scale))


def window_starts(image_size: Sequence[int], patch_size: Sequence[int], step_size: float) -> list[list[int]]:
    """Per axis the window start indices: ceil((image - patch) / (patch * step)) + 1 windows, evenly spread."""
    starts = []
    for size, patch in zip(image_size, patch_size):
        if size < patch:
            raise UnetrPPError(f"image size {list(image_size)} is smaller than the patch {list(patch_size)}; pad first")
        n = int(math.ceil((size - patch) / (patch * step_size))) + 1
        step = (size - patch) / (n - 1) if n > 1 else 0.0
        starts.append([int(round(step * i)) for i in range(n)])
    return starts


def _pad_to_patch(data: torch.Tensor, patch_size: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad (C, z, y, x) so every axis is at least the patch (centred); returns the crop that undoes it."""
    shape = data.shape[1:]
    diffs = [max(p - s, 0) for s, p in zip(shape, patch_size)]
    if not any(diffs):
        return data, tuple(slice(None) for _ in shape)
    pad = []
    for d in reversed(diffs):
        pad += [d // 2, d - d // 2]
    crop = tuple(slice(d // 2, d // 2 + s) for d, s in zip(diffs, shape))
    return torch.nn.functional.pad(data, pad, mode="constant", value=0.0), crop


def _mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Flips to average over: (), then every non-empty subset of the spatial `axes` as dims of (B, C, z, y, x)."""
    dims = [a + 2 for a in axes]
    return [c for r in range(len(dims) + 1) for c in itertools.combinations(dims, r)]


def _forward(network: Network, batch: torch.Tensor, mirrors: list[tuple[int, ...]]) -> torch.Tensor:
    """Mean logits over the mirror combinations: (B, C, *patch) -> (B, K, *patch) float32."""
    total = None
    for dims in mirrors:
        x = torch.flip(batch, dims) if dims else batch
        with torch.autocast(batch.device.type, enabled=batch.device.type == "cuda"):
            out = network(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        out = out.float()
        if dims:
            out = torch.flip(out, dims)
        total = out if total is None else total.add_(out)
    return total / len(mirrors) if len(mirrors) > 1 else total


def _accumulation_device(device: torch.device, n_values: int, accumulate: str) -> torch.device:
    """Where the blended logits live: the compute device unless it is CUDA without room for them."""
    if accumulate == "cpu" or device.type == "cpu":
        return torch.device("cpu")
    if accumulate == "device":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if n_values * 4 < DEVICE_MEMORY_FRACTION * free else torch.device("cpu")


def _window_batches(starts: list[list[int]], patch: Sequence[int],
                    batch_size: int) -> Iterator[list[tuple[slice, ...]]]:
    windows = [tuple(slice(s, s + p) for s, p in zip(corner, patch)) for corner in itertools.product(*starts)]
    for i in range(0, len(windows), batch_size):
        yield windows[i : i + batch_size]


@torch.inference_mode()
def sliding_window_logits(network: Network, data: np.ndarray | torch.Tensor, settings: SlidingWindowSettings,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """Blended logits of one network: (C, z, y, x) -> (K, z, y, x) float32 (on the accumulation device)."""
    device = torch.device(device)
    image = torch.as_tensor(np.asarray(data, dtype=np.float32) if isinstance(data, np.ndarray) else data).float()
    if image.ndim != 4:
        raise UnetrPPError(f"sliding window expects a (C, z, y, x) volume, got shape {list(image.shape)}")
    patch = tuple(int(p) for p in settings.patch_size)
    image, crop = _pad_to_patch(image, patch)
    spatial = tuple(image.shape[1:])
    starts = window_starts(spatial, patch, settings.step_size)
    mirrors = _mirror_combinations(settings.mirror_axes)
    if isinstance(network, nn.Module):
        network.eval()
    image = image.to(device)
    gaussian = torch.tensor(gaussian_importance_map(patch, settings.sigma_scale))
    logits = weights = None
    for windows in _window_batches(starts, patch, settings.sw_batch_size):
        out = _forward(network, torch.stack([image[(slice(None),) + w] for w in windows]), mirrors)
        if logits is None:
            n_values = (out.shape[1] + 1) * math.prod(spatial)
            acc_device = _accumulation_device(device, n_values, settings.accumulate)
            logits = torch.zeros((out.shape[1],) + spatial, dtype=torch.float32, device=acc_device)
            weights = torch.zeros(spatial, dtype=torch.float32, device=acc_device)
            gaussian = gaussian.to(acc_device)
        out = out.to(logits.device)
        for k, w in enumerate(windows):
            logits[(slice(None),) + w].addcmul_(out[k], gaussian)
            weights[w].add_(gaussian)
    logits.div_(weights)
    return logits[(slice(None),) + crop]


@torch.inference_mode()
def predict_probabilities(networks: Sequence[Network], data: np.ndarray | torch.Tensor,
                          settings: SlidingWindowSettings, device: torch.device | str = "cpu", regions: bool = False,
                          dtype: np.dtype = np.float32) -> np.ndarray:
    """Ensemble probabilities: (C, z, y, x) -> (K, z, y, x) softmax (sigmoid if regions) of the mean blended logits.

    nnU-Net v2 `nnUNetPredictor`: logits are averaged over the folds, then the nonlinearity is applied once.
    """
    if not networks:
        raise UnetrPPError("no networks given to predict with")
    if np.dtype(dtype) not in (np.float32, np.float16):
        raise UnetrPPError(f"probabilities dtype must be float32 or float16, not {np.dtype(dtype)}")
    total = None
    for network in networks:
        logits = sliding_window_logits(network, data, settings, device)
        total = logits if total is None else total.add_(logits)
    if len(networks) > 1:
        total.div_(len(networks))
    probabilities_in_place(total, regions)
    return total.cpu().numpy().astype(dtype, copy=False)


def probabilities_in_place(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """(K, z, y, x) logits -> sigmoid (regions) or softmax over K, written into `logits` slab by slab along z.

    Equal to `torch.sigmoid` / `torch.softmax(dim=0)`; no second full-volume buffer is allocated.
    """
    if regions:
        return logits.sigmoid_()
    step = max(1, NONLINEARITY_SLAB_VALUES // max(1, math.prod(logits.shape[:1] + logits.shape[2:])))
    for z in range(0, logits.shape[1], step):
        slab = logits[:, z : z + step]
        slab.copy_(torch.softmax(slab, dim=0))
    return logits
