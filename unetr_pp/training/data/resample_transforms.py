"""The resampling augmentations (rotation/scaling, simulated low resolution) done with torch on the CPU.

They draw their random parameters exactly as batchgenerators' `SpatialTransform` (no elastic deformation,
centred) and `SimulateLowResolutionTransform` do, so the same seed gives the same rotations, scales and
zooms, but resample linearly with `torch.nn.functional.grid_sample` / `interpolate` (as nnU-Net v2's
batchgeneratorsv2 does) instead of scipy cubic splines: with batchgenerators the two transforms took 0.8 s
of a 0.93 s batch of two 56x192x160 patches (docs/benchmarks.md, data loader). Segmentations are resampled
by interpolating each label's indicator linearly and taking the per-voxel argmax (exact ties go to the
lower label).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from batchgenerators.augmentations.crop_and_pad_augmentations import center_crop
from batchgenerators.augmentations.utils import rotate_coords_2d, rotate_coords_3d
from batchgenerators.transforms.abstract_transforms import AbstractTransform


def draw_affine(dim: int, angle_x: tuple[float, float], angle_y: tuple[float, float],
                angle_z: tuple[float, float], scale: tuple[float, float], p_rot: float, p_scale: float,
                p_rot_per_axis: float = 1.0) -> np.ndarray | None:
    """(dim, dim) matrix A with input offset = A @ output offset from the centres, or None (no change).

    Draws from the global numpy RNG in the order of batchgenerators' `augment_spatial`.
    """
    matrix = np.eye(dim)
    modified = False
    if np.random.uniform() < p_rot:
        angles = []
        for axis_range in (angle_x, angle_y, angle_z)[:1 if dim == 2 else 3]:
            angles.append(np.random.uniform(*axis_range) if np.random.uniform() <= p_rot_per_axis else 0)
        matrix = rotate_coords_3d(matrix, *angles) if dim == 3 else rotate_coords_2d(matrix, angles[0])
        modified = True
    if np.random.uniform() < p_scale:
        if np.random.random() < 0.5 and scale[0] < 1:
            factor = np.random.uniform(scale[0], 1)
        else:
            factor = np.random.uniform(max(scale[0], 1), scale[1])
        matrix = matrix * factor
        modified = True
    return matrix if modified else None


def sampling_grid(matrix: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int]) -> torch.Tensor:
    """grid_sample grid (1, *out_shape, dim) (align_corners=True) of in = A @ (out - (out-1)/2) + in/2 - 1/2."""
    dim = len(out_shape)
    to_norm = 2.0 / np.maximum(np.array(in_shape, dtype=float) - 1, 1)
    half_out = (np.array(out_shape, dtype=float) - 1) / 2
    centre_in = np.array(in_shape, dtype=float) / 2 - 0.5
    # normalised output u in [-1, 1] -> index offset half_out * u -> input index -> normalised input
    theta = np.zeros((dim, dim + 1))
    theta[:, :dim] = to_norm[:, None] * matrix * half_out[None, :]
    theta[:, dim] = to_norm * centre_in - 1
    theta = theta[::-1, :]                              # grid_sample wants (x, y[, z]) rows ...
    theta[:, :dim] = theta[:, :dim][:, ::-1]            # ... and columns
    theta_t = torch.from_numpy(np.ascontiguousarray(theta, dtype=np.float32))[None]
    return F.affine_grid(theta_t, [1, 1, *out_shape], align_corners=True)


def resample_sample(data: np.ndarray, seg: np.ndarray | None, matrix: np.ndarray, out_shape: Sequence[int],
                    seg_outside: float) -> tuple[np.ndarray, np.ndarray | None]:
    """One sample (C, *in) -> (C, *out_shape): data linear with 0 outside, seg per-label linear argmax.

    As scipy's `map_coordinates(mode="constant")` at order 1, points outside [0, size - 1] on any axis are
    outside: data 0 there, segmentation `seg_outside`.
    """
    grid = sampling_grid(matrix, data.shape[1:], out_shape)
    outside = (grid.abs() > 1 + 1e-6).any(-1).to(torch.float32)  # (1, *out_shape)
    image = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None]
    data_out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    data_out.mul_(1 - outside)
    if seg is None:
        return data_out.numpy(), None
    labels = resample_labels(seg.astype(np.int16), grid)
    labels[:, outside[0] > 0] = seg_outside
    return data_out.numpy(), labels.numpy()


def resample_labels(values: np.ndarray, grid: torch.Tensor) -> torch.Tensor:
    """Label maps (C, *in) int16 at the grid points -> (C, *out) float32: argmax of linear label indicators.

    Equal to interpolating every label's indicator with `grid_sample` (clamped to the image) and taking the
    per-voxel argmax, exact ties going to the lower label, but evaluated on the 2^dim neighbours of each point:
    where they all carry one label (almost everywhere) that label wins, and only the other points are scored.
    """
    dim = grid.shape[-1]
    size = torch.tensor(values.shape[:0:-1], dtype=torch.float32)  # grid order: x, y[, z]
    pos = torch.minimum(((grid.reshape(-1, dim) + 1) * (0.5 * (size - 1))).clamp_(min=0), size - 1)
    low = pos.floor()
    frac = pos - low
    padded = np.pad(values, [(0, 0)] + [(0, 1)] * dim, mode="edge")  # low + 1 is always a valid index
    strides = np.cumprod([1] + list(padded.shape[:0:-1]))[:dim]
    base = (low.to(torch.int64) * torch.from_numpy(strides)).sum(1)
    flat = torch.from_numpy(padded.reshape(values.shape[0], -1))
    corners = list(itertools.product((0, 1), repeat=dim))
    neighbours = [flat[:, base + int(np.dot(corner, strides))] for corner in corners]
    labels = neighbours[0].clone()
    mixed = torch.zeros(labels.shape, dtype=torch.bool)
    for other in neighbours[1:]:
        mixed |= other != labels
    channel, point = mixed.nonzero(as_tuple=True)
    if len(point):
        candidates = [n[channel, point].to(torch.float32) for n in neighbours]
        f = frac[point]
        weights = [torch.prod(torch.stack([f[:, d] if bit else 1 - f[:, d] for d, bit in enumerate(corner)]), 0)
                   for corner in corners]
        scores = [w.clone() for w in weights]
        for k in range(len(corners)):
            for j in range(k + 1, len(corners)):
                same = (candidates[j] == candidates[k]).to(torch.float32)
                scores[k].addcmul_(same, weights[j])
                scores[j].addcmul_(same, weights[k])
        best, winner = scores[0], candidates[0]
        for score, candidate in zip(scores[1:], candidates[1:]):
            better = (score > best) | ((score == best) & (candidate < winner))
            best, winner = torch.where(better, score, best), torch.where(better, candidate, winner)
        labels[channel, point] = winner.to(labels.dtype)
    return labels.to(torch.float32).reshape((values.shape[0],) + tuple(grid.shape[1:-1]))


class AffineSpatialTransform(AbstractTransform):
    """Random rotation/scaling of data and seg (B, C, *in) to (B, C, *patch_size), centred; linear in torch.

    Parameters as batchgenerators' `SpatialTransform` with `do_elastic_deform=False, random_crop=False`,
    constant border (data 0, seg `border_cval_seg`). Samples left unchanged are centre crops.
    """

    def __init__(self, patch_size: Sequence[int], angle_x: tuple[float, float], angle_y: tuple[float, float],
                 angle_z: tuple[float, float], scale: tuple[float, float], p_rot_per_sample: float,
                 p_scale_per_sample: float, border_cval_seg: float = -1, p_rot_per_axis: float = 1.0) -> None:
        self.patch_size = tuple(int(p) for p in patch_size)
        self.angles = (angle_x, angle_y, angle_z)
        self.scale = scale
        self.p_rot, self.p_scale, self.p_rot_per_axis = p_rot_per_sample, p_scale_per_sample, p_rot_per_axis
        self.border_cval_seg = border_cval_seg

    def __call__(self, **batch):
        data, seg = batch["data"], batch.get("seg")
        dim = len(self.patch_size)
        data_out = np.empty(data.shape[:2] + self.patch_size, dtype=np.float32)
        seg_out = None if seg is None else np.empty(seg.shape[:2] + self.patch_size, dtype=np.float32)
        for b in range(data.shape[0]):
            matrix = draw_affine(dim, *self.angles, self.scale, self.p_rot, self.p_scale, self.p_rot_per_axis)
            if matrix is None:
                d, s = center_crop(data[b:b + 1], self.patch_size, None if seg is None else seg[b:b + 1])
                d, s = d[0], None if s is None else s[0]
            else:
                d, s = resample_sample(data[b], None if seg is None else seg[b], matrix, self.patch_size,
                                       self.border_cval_seg)
            data_out[b] = d
            if seg_out is not None:
                seg_out[b] = s
        batch["data"] = data_out
        if seg_out is not None:
            batch["seg"] = seg_out
        return batch


class LowResolutionTransform(AbstractTransform):
    """Simulated low resolution: per channel, nearest downsampling by a zoom in `zoom_range`, linear upsampling.

    Draws as batchgenerators' `SimulateLowResolutionTransform(per_channel=True)`; `ignore_axes` keep their size.
    """

    def __init__(self, zoom_range: tuple[float, float], p_per_sample: float, p_per_channel: float,
                 ignore_axes: Sequence[int] | None = None) -> None:
        self.zoom_range = zoom_range
        self.p_per_sample, self.p_per_channel = p_per_sample, p_per_channel
        self.ignore_axes = tuple(ignore_axes or ())

    def __call__(self, **batch):
        data = batch["data"]
        shape = np.array(data.shape[2:])
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(shape)]
        for b in range(data.shape[0]):
            if np.random.uniform() >= self.p_per_sample:
                continue
            for c in range(data.shape[1]):
                if np.random.uniform() >= self.p_per_channel:
                    continue
                target = np.round(shape * np.random.uniform(*self.zoom_range)).astype(int)
                target[list(self.ignore_axes)] = shape[list(self.ignore_axes)]
                image = torch.from_numpy(np.ascontiguousarray(data[b, c], dtype=np.float32))[None, None]
                low = F.interpolate(image, size=[max(int(t), 1) for t in target], mode="nearest-exact")
                data[b, c] = F.interpolate(low, size=[int(s) for s in shape], mode=mode, align_corners=False)[0, 0]
        return batch


def downsample_labels(target: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour label map resize (B, C, *in) -> (B, C, *shape), as skimage `resize(order=0)` does."""
    tensor = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
    out = F.interpolate(tensor, size=[int(s) for s in shape], mode="nearest-exact")
    return out.numpy().astype(target.dtype)
