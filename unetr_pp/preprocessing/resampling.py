"""Resampling of images and segmentations to a new spacing or shape (nnU-Net semantics, float32, scipy).

Reference behaviour (nnU-Net v1/v2 `resample_data_or_seg`):
- data: skimage `resize(order=3, mode="edge", anti_aliasing=False)` per channel, i.e. a spline zoom
  on the pixel-centre grid, clipped to the input's value range;
- segmentation: per label the indicator is resized with `order` (1) and each voxel takes the label
  with the highest score (batchgenerators `resize_segmentation`, ties go to the nearest-neighbour label);
- anisotropic spacing: in-plane resize slice by slice with `order`, then along the separate axis with
  `order_z` (0 = nearest) on the same pixel-centre grid.
We call `scipy.ndimage.zoom(grid_mode=True)` directly in float32 and resize a label's indicator only
inside that label's bounding box (it is zero elsewhere), which is what makes this fast. Memory: one
axis per pass, in slabs (`SLAB_VOXELS`), so a pass holds its input and output volumes only; the
segmentation argmax keeps a single float32 score volume.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterator, Sequence

import numpy as np
from scipy import ndimage, sparse

ANISOTROPY_THRESHOLD = 3.0


def compute_new_shape(
    old_shape: Sequence[int], old_spacing: Sequence[float], new_spacing: Sequence[float]
) -> tuple[int, ...]:
    """Shape after resampling: round(old_shape * old_spacing / new_spacing) per axis."""
    if not len(old_shape) == len(old_spacing) == len(new_spacing):
        raise ValueError(f"shape {old_shape}, spacing {old_spacing} and {new_spacing} differ in length")
    return tuple(int(round(s * o / n)) for s, o, n in zip(old_shape, old_spacing, new_spacing))


def _lowres_axis(spacing: Sequence[float]) -> int | None:
    spacing = np.asarray(spacing, dtype=float)
    axes = np.flatnonzero(spacing == spacing.max())
    return int(axes[0]) if len(axes) == 1 else None


def _anisotropic(spacing: Sequence[float], threshold: float) -> bool:
    return float(np.max(spacing) / np.min(spacing)) > threshold


def get_separate_z_axis(
    old_spacing: Sequence[float], new_spacing: Sequence[float], threshold: float = ANISOTROPY_THRESHOLD
) -> int | None:
    """Axis to resample separately (nnU-Net rule), or None.

    Anisotropic current spacing -> its lowest-resolution axis; else anisotropic target spacing -> that
    axis; None when the spacing is not anisotropic or no single axis is the coarsest.
    """
    if _anisotropic(old_spacing, threshold):
        return _lowres_axis(old_spacing)
    if _anisotropic(new_spacing, threshold):
        return _lowres_axis(new_spacing)
    return None


# Operator entries below this fraction of the largest are dropped: the spline prefilter's weights decay
# by 0.268 per voxel, so this keeps ~40 per row and changes results only at float32 rounding (~1e-6).
OPERATOR_TOLERANCE = 1e-12


@functools.lru_cache(maxsize=128)
def _axis_operator(n_in: int, n_out: int, order: int) -> sparse.csr_matrix:
    """(n_out, n_in) float32 sparse matrix of the 1D spline zoom (prefilter + pixel-centre sampling, edge mode).

    scipy's N-D spline zoom is a tensor product of these 1D operators, so a volume is zoomed exactly
    by one sparse matrix product per axis instead of 4^3 taps per output voxel.
    """
    basis = np.eye(n_in)
    columns = np.stack([ndimage.zoom(row, n_out / n_in, order=order, mode="nearest", grid_mode=True)
                        for row in basis], axis=1)
    columns[np.abs(columns) < OPERATOR_TOLERANCE * np.abs(columns).max()] = 0
    return sparse.csr_matrix(columns.astype(np.float32))


# Volumes are resampled in slabs of at most about this many voxels (the slab copies are the only temporaries)
SLAB_VOXELS = 1 << 22


def _apply_along(volume: np.ndarray, operator: sparse.csr_matrix, axis: int) -> np.ndarray:
    """Multiply `operator` (n_out, n_in) into `volume` along `axis` -> new float32 volume.

    Works in slabs along another axis; each output voxel gets the same products summed in the same
    order as in one product over the whole volume, so the result does not depend on the slab size.
    """
    shape = list(volume.shape)
    shape[axis] = operator.shape[0]
    out = np.empty(shape, dtype=np.float32)
    across = next(a for a in range(volume.ndim) if a != axis)
    per_index = max(volume.size, out.size) // max(1, volume.shape[across])
    step = max(1, SLAB_VOXELS // max(1, per_index))
    for start in range(0, volume.shape[across], step):
        slab = (slice(None),) * across + (slice(start, start + step),)
        front = np.moveaxis(volume[slab], axis, 0)
        flat = np.ascontiguousarray(front, dtype=np.float32).reshape(front.shape[0], -1)
        product = np.asarray(operator @ flat, dtype=np.float32)
        out[slab] = np.moveaxis(product.reshape((operator.shape[0],) + front.shape[1:]), 0, axis)
    return out


def _zoom_passes(shape: Sequence[int], new_shape: Sequence[int], order: int, axes: Sequence[int]) -> list:
    """[(axis, 1D operator)] in the order they are applied (the most shrinking axis first)."""
    todo = sorted((a for a in axes if shape[a] != new_shape[a]), key=lambda a: new_shape[a] / shape[a])
    return [(a, _axis_operator(shape[a], new_shape[a], order)) for a in todo]


def _value_range(image: np.ndarray, axes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """min and max of `image` over `axes` (kept as size-1 dimensions), i.e. per slice of the other axes."""
    reduce = tuple(axes)
    return image.min(axis=reduce, keepdims=True), image.max(axis=reduce, keepdims=True)


def _zoom(
    image: np.ndarray, new_shape: Sequence[int], order: int, axes: Sequence[int] | None = None, clip: bool = True
) -> np.ndarray:
    """skimage `resize(mode='edge', anti_aliasing=False)` of float32 `image` along `axes` (default all).

    With `clip`, spline orders > 1 clip to the input range like skimage, taken per slice when only
    some axes are resized (nnU-Net resizes those slice by slice).
    """
    axes = range(image.ndim) if axes is None else axes
    passes = _zoom_passes(image.shape, new_shape, order, axes)
    bounds = _value_range(image, axes) if clip and order > 1 and passes else None
    out = np.ascontiguousarray(image, dtype=np.float32)
    for axis, operator in passes:
        out = _apply_along(out, operator, axis)
    if bounds is not None:
        np.clip(out, *bounds, out=out)
    return out


def resample_volume(
    load: Callable[[], np.ndarray], new_shape: Sequence[int], axis: int | None, order: int, order_z: int = 0
) -> np.ndarray:
    """One float32 volume (z, y, x) -> float32 `new_shape`, equal to the data path of `resample_data_or_seg`.

    `load()` is called once and its volume is owned here, so every intermediate is freed by the next
    pass: at most two volumes are alive at a time.
    """
    volume = load()
    new_shape = tuple(int(v) for v in new_shape)
    plane = [0, 1, 2] if axis is None else [a for a in range(3) if a != axis]
    plane_shape = tuple(volume.shape[a] if a == axis else new_shape[a] for a in range(3))
    passes = _zoom_passes(volume.shape, plane_shape, order, plane)
    bounds = _value_range(volume, plane) if order > 1 and passes else None
    for a, operator in passes:
        volume = _apply_along(volume, operator, a)
    if bounds is not None:
        np.clip(volume, *bounds, out=volume)
    for a, operator in _zoom_passes(plane_shape, new_shape, order_z, [] if axis is None else [axis]):
        volume = _apply_along(volume, operator, a)
    return np.ascontiguousarray(volume, dtype=np.float32)


def _zoom_window(
    indicator: np.ndarray, new_shape: Sequence[int], lo: Sequence[int], hi: Sequence[int]
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Order-1 zoom of a bool/0-1 `indicator` evaluated only on the output voxels that see input [lo, hi).

    Returns the output slices and the float32 values there; outside them the full zoom is exactly 0.
    """
    in_shape = indicator.shape
    scale = np.array(in_shape, dtype=float) / np.array(new_shape, dtype=float)
    lo_in = np.maximum(np.array(lo) - 1, 0)
    hi_in = np.minimum(np.array(hi) + 1, in_shape)
    # output o samples input coordinate scale*(o + 0.5) - 0.5; keep every o whose coordinate lies in (lo-1, hi)
    out_lo = np.clip(np.floor((np.array(lo) - 1 + 0.5) / scale - 0.5).astype(int), 0, new_shape)
    out_hi = np.clip(np.ceil((np.array(hi) + 0.5) / scale - 0.5).astype(int) + 1, 0, new_shape)
    window = tuple(slice(a, b) for a, b in zip(lo_in, hi_in))
    sub = indicator[window].astype(np.float32)
    offset = scale * out_lo + 0.5 * scale - 0.5 - lo_in
    values = ndimage.affine_transform(
        sub, scale, offset=offset, output_shape=tuple(int(v) for v in out_hi - out_lo),
        output=np.float32, order=1, mode="nearest",
    )
    return tuple(slice(int(a), int(b)) for a, b in zip(out_lo, out_hi)), values


def _bbox(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """Inclusive-exclusive bounds (lo, hi) of the True voxels of a non-empty `mask`."""
    lo, hi = [], []
    for d in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != d)))
        lo.append(int(hit[0]))
        hi.append(int(hit[-1]) + 1)
    return lo, hi


def _label_scores(seg: np.ndarray, labels: np.ndarray, counts: np.ndarray, new_shape: tuple[int, ...],
                  order: int, axes) -> Iterator[tuple[int, tuple[slice, ...], np.ndarray]]:
    """Yield (label, output window, interpolated indicator there) for every label in `labels`.

    At order 1 the first label yielded is the most frequent one, over the whole output.
    """
    full = tuple(slice(None) for _ in new_shape)
    if order != 1:
        for c in labels:
            yield int(c), full, _zoom((seg == c).astype(np.float32), new_shape, order, axes)
        return
    # order-1 indicators sum to one: the most frequent label's score is 1 - the others', so it needs
    # no full-volume zoom; every other label is zoomed only inside its bounding box (an axis whose size
    # does not change is the identity at order 1)
    dominant = max(zip(counts.tolist(), labels.tolist()))[1]
    score = np.zeros(new_shape, dtype=np.float32)
    others = []
    for c in labels.tolist():
        if c == dominant:
            continue
        mask = seg == c
        window, values = _zoom_window(mask, new_shape, *_bbox(mask))
        del mask
        score[window] += values
        others.append((c, window, values))
    np.subtract(np.float32(1.0), score, out=score)
    yield dominant, full, score
    del score
    while others:
        yield others.pop(0)


def _resize_segmentation(
    seg: np.ndarray, new_shape: Sequence[int], order: int, axes: Sequence[int] | None = None
) -> np.ndarray:
    """batchgenerators `resize_segmentation` along `axes` (default all): per-label indicator resize +
    argmax, exact ties -> the nearest-neighbour label.

    Labels are visited in order keeping the best score so far; a later label wins when it scores higher,
    or as high when it is the nearest-neighbour label (the same result as taking the first maximum and
    then preferring the nearest label on ties, without a second score volume).
    """
    new_shape = tuple(int(v) for v in new_shape)
    nearest = ndimage.zoom(seg, [n / s for n, s in zip(new_shape, seg.shape)], order=0, mode="nearest",
                           grid_mode=True)
    labels, counts = np.unique(seg, return_counts=True)
    if order == 0 or len(labels) <= 1:
        return nearest.astype(seg.dtype, copy=False)
    win = best = None
    for c, window, values in _label_scores(seg, labels, counts, new_shape, order, axes):
        if best is None:
            best, win = values, np.full(new_shape, c, dtype=seg.dtype)
            continue
        best_here, win_here = best[window], win[window]
        take = values > best_here
        take |= (values == best_here) & (nearest[window] == c)
        best_here[take] = values[take]
        win_here[take] = c
    return win


def _resize_seg_along_axis(seg: np.ndarray, new_shape: tuple[int, ...], axis: int, order_z: int) -> np.ndarray:
    """nnU-Net's separate-axis step for labels: nearest (order_z 0), else per label interpolate, round, > 0.5."""
    if order_z == 0:
        factors = [n / s for n, s in zip(new_shape, seg.shape)]
        return ndimage.zoom(seg, factors, order=0, mode="nearest", grid_mode=True)
    out = np.zeros(new_shape, dtype=seg.dtype)
    for c in np.unique(seg):
        out[np.round(_zoom((seg == c).astype(np.float32), new_shape, order_z, [axis], clip=False)) > 0.5] = c
    return out


def resample_data_or_seg(
    data: np.ndarray, new_shape: Sequence[int], is_seg: bool, axis: int | None, order: int, order_z: int = 0
) -> np.ndarray:
    """Resample `data` (C, z, y, x) to (C, *new_shape).

    Data -> float32 spline of `order`; seg (`is_seg`) -> per-label `order` resize + argmax, same dtype.
    With `axis` set, in-plane resizing uses `order` and the separate `axis` uses `order_z`.
    """
    if data.ndim != 4:
        raise ValueError(f"data must be (C, z, y, x), got shape {data.shape}")
    new_shape = tuple(int(v) for v in new_shape)
    if len(new_shape) != 3:
        raise ValueError(f"new_shape must have 3 entries, got {new_shape}")
    if tuple(data.shape[1:]) == new_shape:
        return data if is_seg else data.astype(np.float32, copy=False)
    out_all = np.empty((len(data),) + new_shape, dtype=data.dtype if is_seg else np.float32)
    for c, channel in enumerate(data):
        if axis is None:
            out = _resize_segmentation(channel, new_shape, order) if is_seg else _zoom(channel, new_shape, order)
        else:
            plane = [a for a in range(3) if a != axis]
            plane_shape = tuple(channel.shape[a] if a == axis else new_shape[a] for a in range(3))
            if is_seg:
                out = _resize_segmentation(channel, plane_shape, order, plane)
                out = _resize_seg_along_axis(out, new_shape, axis, order_z)
            else:
                out = _zoom(channel, plane_shape, order, plane)
                out = _zoom(out, new_shape, order_z, [axis], clip=False)
        out_all[c] = out
        del out
    return out_all


def resample_to_spacing(
    data: np.ndarray,
    current_spacing: Sequence[float],
    new_spacing: Sequence[float],
    is_seg: bool,
    order: int,
    order_z: int = 0,
    threshold: float = ANISOTROPY_THRESHOLD,
    new_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample (C, z, y, x) from `current_spacing` to `new_spacing` (or to `new_shape` when given).

    The separate axis follows `get_separate_z_axis(current_spacing, new_spacing, threshold)`.
    """
    if new_shape is None:
        new_shape = compute_new_shape(data.shape[1:], current_spacing, new_spacing)
    axis = get_separate_z_axis(current_spacing, new_spacing, threshold)
    return resample_data_or_seg(data, new_shape, is_seg, axis, order, order_z)
