"""Crop a case to the bounding box of its nonzero region (nnU-Net `crop_to_nonzero`).

The nonzero mask is (any channel != 0) with holes filled (`scipy.ndimage.binary_fill_holes`). Like
nnU-Net v1 and v2, background voxels of the segmentation outside that mask become -1 here; the
preprocessor keeps the -1 only for configurations that normalize inside the mask and turns it back
into 0 otherwise (docs/architecture.md: `<case>_seg.npy`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import binary_fill_holes

from unetr_pp.io import Geometry

OUTSIDE_MASK_LABEL = -1


def create_nonzero_mask(data: np.ndarray) -> np.ndarray:
    """(C, z, y, x) -> bool (z, y, x): any channel != 0, holes filled."""
    mask = np.any(data != 0, axis=0)
    return binary_fill_holes(mask)


def cropped_nonzero_mask(channels: Sequence[np.ndarray]) -> tuple[list[list[int]], np.ndarray]:
    """Channels (z, y, x) of any dtype -> (bbox, bool mask inside the bbox), equal to cropping
    `create_nonzero_mask`: holes never reach the bounding box's faces (everything outside it is background
    connected to the array border), so they are filled inside the box only."""
    mask = channels[0] != 0
    for channel in channels[1:]:
        mask |= channel != 0
    bbox = get_bbox(mask)
    return bbox, binary_fill_holes(mask[bbox_slices(bbox)])


def get_bbox(mask: np.ndarray) -> list[list[int]]:
    """Half-open bounding box [[z0, z1], [y0, y1], [x0, x1]] of `mask`; the whole array when it is empty."""
    bbox = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        bbox.append([int(hit[0]), int(hit[-1]) + 1] if len(hit) else [0, int(mask.shape[axis])])
    return bbox


def bbox_slices(bbox: list[list[int]]) -> tuple[slice, ...]:
    """[[z0, z1], ...] -> (slice(z0, z1), ...)."""
    return tuple(slice(lo, hi) for lo, hi in bbox)


def crop_to_nonzero(
    data: np.ndarray, seg: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Crop data (C, z, y, x) and seg (1, z, y, x) to the nonzero bounding box.

    Returns (data, seg, bbox); seg is int8/int16 with background outside the filled nonzero mask set
    to -1. Without `seg`, the returned seg is 0 inside the mask and -1 outside.
    """
    mask = create_nonzero_mask(data)
    bbox = get_bbox(mask)
    slicer = bbox_slices(bbox)
    mask = mask[slicer][None]
    data = data[(slice(None),) + slicer]
    if seg is None:
        seg = np.where(mask, np.int8(0), np.int8(OUTSIDE_MASK_LABEL))
    else:
        seg = np.array(seg[(slice(None),) + slicer], dtype=seg_dtype(seg))
        seg[(seg == 0) & ~mask] = OUTSIDE_MASK_LABEL
    return data, seg, bbox


def seg_dtype(seg: np.ndarray) -> type:
    """int8 when every label fits, else int16."""
    return np.int8 if seg.size == 0 or int(seg.max()) <= 127 else np.int16


def crop_properties(case_id: str, geometry: Geometry, original_shape: Sequence[int], bbox: list[list[int]]) -> dict:
    """The crop properties of docs/architecture.md (original axes)."""
    return {
        "case_id": case_id,
        "geometry": geometry.to_json(),
        "original_shape": [int(v) for v in original_shape],
        "bbox": bbox,
        "shape_after_cropping": [hi - lo for lo, hi in bbox],
        "original_spacing": list(geometry.spacing),
    }


def crop_with_properties(
    case_id: str, data: np.ndarray, geometry: Geometry, seg: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """`crop_to_nonzero` plus the crop properties of docs/architecture.md (original axes)."""
    cropped, seg, bbox = crop_to_nonzero(data, seg)
    return np.ascontiguousarray(cropped), seg, crop_properties(case_id, geometry, data.shape[1:], bbox)


def crop_channels(channels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """`crop_to_nonzero` without a label for channels (z, y, x) in their stored dtype -> (float32 (C, z, y, x),
    int8 (1, z, y, x) 0 inside / -1 outside the mask, bbox); each channel is released once copied."""
    bbox, mask = cropped_nonzero_mask(channels)
    slicer = bbox_slices(bbox)
    data = np.empty((len(channels),) + mask.shape, dtype=np.float32)
    for c in range(len(channels)):
        data[c] = channels[c][slicer]
        channels[c] = None
    return data, np.where(mask, np.int8(0), np.int8(OUTSIDE_MASK_LABEL))[None], bbox
