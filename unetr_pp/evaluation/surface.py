"""HD95 exactly as medpy 0.5.2 `hd95`, computed on a crop around the two masks.

medpy: surface = mask XOR binary_erosion(mask, 6-neighbour cross, outside the image = background);
for every surface voxel of one mask the Euclidean distance (with spacing) to the nearest surface
voxel of the other mask (scipy `distance_transform_edt` of the inverted surface); HD95 =
`numpy.percentile(concat(d_ab, d_ba), 95)` with linear interpolation.

Why cropping to the union bounding box (margin 1) gives bit-identical numbers:
- Erosion looks at the 6 neighbours only. Inside the crop every neighbour of a mask voxel is either
  inside the crop or outside the image; where the margin is cut by the image border the crop border
  *is* the image border, where it is not the margin voxels are background in both masks. Either way
  the eroded mask, hence the surface, is the same as on the full volume (margin 0 would do too,
  because outside the box is background anyway; the margin keeps every surface voxel off the crop
  edge, which costs a few voxels).
- scipy's feature transform runs one 1D pass per axis. After the passes over a set of axes, a voxel
  only knows features lying in its own sub-space along those axes; a voxel whose coordinate on a
  not-yet-processed axis lies outside the features' box therefore has no feature and never competes
  in a later pass. So lines outside the crop contribute nothing, and every comparison inside the
  crop sees the same candidates in the same order. All arithmetic uses coordinate *differences*
  (translation invariant, exact in float64), so the chosen feature and the distance are the same
  bits; the crop cutting the volume changes nothing because no feature lies outside it. The one
  stateful step, the walk along the candidate list when assigning voxels of a line, starts at the
  first candidate at the crop edge instead of carrying its position in from outside the crop; it
  still ends on the same candidate because the difference of two candidates' squared distances is
  linear and strictly monotone along the line (it changes by >= 2*spacing^2 per voxel, far above
  rounding), so a candidate passed before the crop edge would be passed again there.
- The percentile only depends on the multiset of distances, not on their order.
Distances are computed only at the query surface voxels, with scipy's own formula
(integer offset -> float64, times spacing, squared, summed over axes in order, sqrt).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

CROP_MARGIN = 1


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Bool (same shape) surface of `mask`: mask XOR erosion by the 6-neighbour cross, border = background."""
    interior = mask.copy()
    for axis in range(mask.ndim):
        head = [slice(None)] * mask.ndim
        tail = [slice(None)] * mask.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        interior[tuple(head)] &= mask[tuple(tail)]
        interior[tuple(tail)] &= mask[tuple(head)]
        head[axis], tail[axis] = 0, -1
        interior[tuple(head)] = False
        interior[tuple(tail)] = False
    return mask ^ interior


def directed_surface_distances(
    query_surface: np.ndarray, feature_surface: np.ndarray, sampling: Sequence[float] | None
) -> np.ndarray:
    """float64 (n_query,) distance of every `query_surface` voxel to the nearest `feature_surface` voxel."""
    features = distance_transform_edt(
        ~feature_surface, sampling=sampling, return_distances=False, return_indices=True
    )
    points = np.nonzero(query_surface)
    offsets = (features[(slice(None),) + points] - np.stack(points)).astype(np.float64)
    if sampling is not None:
        for axis, step in enumerate(np.asarray(sampling, dtype=np.float64)):
            offsets[axis] *= step
    np.multiply(offsets, offsets, offsets)
    return np.sqrt(np.add.reduce(offsets, axis=0))


def crop_box(
    boxes: Sequence[tuple[slice, ...]], shape: Sequence[int], margin: int = CROP_MARGIN
) -> tuple[slice, ...]:
    """Union of bounding boxes (find_objects slices) grown by `margin`, clipped to `shape`."""
    return tuple(
        slice(max(0, min(b[axis].start for b in boxes) - margin), min(size, max(b[axis].stop for b in boxes) + margin))
        for axis, size in enumerate(shape)
    )


def hd95_cropped(reference: np.ndarray, prediction: np.ndarray, sampling: Sequence[float] | None) -> float:
    """medpy `hd95` of two non-empty bool masks already cropped by `crop_box` (same shape)."""
    ref_surface = surface_voxels(reference)
    pred_surface = surface_voxels(prediction)
    distances = np.concatenate(
        (
            directed_surface_distances(pred_surface, ref_surface, sampling),
            directed_surface_distances(ref_surface, pred_surface, sampling),
        )
    )
    return float(np.percentile(distances, 95))
