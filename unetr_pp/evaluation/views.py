"""Where and how to look at a 3D case: radiological orientation, slice positions, intensity window.

Volumes are first brought into a display frame from their direction cosines: array axes (I→S, A→P, R→L),
i.e. each index grows towards LPS+ (ITK's physical frame). Oblique directions go to the nearest axes.
In that frame the three views are:

| view | rows (top → bottom) | columns (left → right) | the radiological convention |
|---|---|---|---|
| axial | anterior → posterior | patient right → left | seen from the feet, patient's right on the viewer's left |
| coronal | superior → inferior | patient right → left | seen from the front |
| sagittal | superior → inferior | anterior → posterior | seen from the patient's right |
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from unetr_pp.io.images import Geometry

VIEWS = ("axial", "coronal", "sagittal")
CORNERS = {"axial": ("A", "P", "R", "L"), "coronal": ("S", "I", "R", "L"), "sagittal": ("S", "I", "A", "P")}
CT_WINDOW = (40.0, 400.0)  # level, width (HU): soft tissue
PERCENTILES = (0.5, 99.5)
_SAMPLE_VOXELS = 1_000_000
_POOL_ABOVE = 4_000_000  # voxels: larger disagreement boxes are searched in 2x2x2 blocks


@dataclass(frozen=True)
class DisplayFrame:
    """How to turn a (z, y, x) array into the display frame: axis order, flips, and the resulting spacing."""

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    spacing: tuple[float, float, float]

    def apply(self, array: np.ndarray) -> np.ndarray:
        """(z, y, x) array -> display-frame view (I→S, A→P, R→L); no copy."""
        out = np.transpose(array, self.axes)
        return out[tuple(slice(None, None, -1) if flip else slice(None) for flip in self.flips)]

    def array_index(self, index: Sequence[int], shape: Sequence[int]) -> tuple[int, int, int]:
        """Display-frame voxel `index` of a display-frame volume of `shape` -> the voxel (z, y, x) of the array."""
        out = [0, 0, 0]
        for d, axis in enumerate(self.axes):
            out[axis] = int(shape[d]) - 1 - int(index[d]) if self.flips[d] else int(index[d])
        return tuple(out)


def display_frame(geometry: Geometry) -> DisplayFrame:
    """The permutation and flips that bring an array with `geometry` into the display frame (LPS+ indices)."""
    direction = np.asarray(geometry.itk_direction, float).reshape(3, 3)  # column c: physical direction of ITK axis c
    by_array_axis = direction[:, ::-1]  # column a: physical direction of numpy axis a (z, y, x)
    physical_order = (2, 1, 0)  # display axes: physical z (S), y (P), x (L)
    best = max(itertools.permutations(range(3)),
               key=lambda perm: sum(abs(by_array_axis[physical_order[d], perm[d]]) for d in range(3)))
    flips = tuple(bool(by_array_axis[physical_order[d], best[d]] < 0) for d in range(3))
    spacing = tuple(float(geometry.spacing[a]) for a in best)
    return DisplayFrame(tuple(best), flips, spacing)


@dataclass(frozen=True)
class Slice2D:
    """One displayed slice: the 2D arrays' row/column spacing (mm) and the position it cuts (display index)."""

    view: str
    index: int
    row_spacing: float
    col_spacing: float

    @property
    def aspect(self) -> float:
        """matplotlib `imshow` aspect (height of a row / width of a column)."""
        return self.row_spacing / self.col_spacing


def slice_plan(center: Sequence[int], spacing: Sequence[float]) -> list[Slice2D]:
    """The axial, coronal and sagittal slices through `center` (display-frame indices, spacing)."""
    sz, sy, sx = spacing
    return [Slice2D("axial", int(center[0]), sy, sx), Slice2D("coronal", int(center[1]), sz, sx),
            Slice2D("sagittal", int(center[2]), sz, sy)]


def cut(volume: np.ndarray, plane: Slice2D) -> np.ndarray:
    """2D array of a display-frame volume as shown: rows and columns as in the module table."""
    if plane.view == "axial":
        return volume[plane.index]
    if plane.view == "coronal":
        return volume[::-1, plane.index, :]
    return volume[::-1, :, plane.index]


def view_shape(shape: Sequence[int], plane: Slice2D) -> tuple[int, int]:
    """(rows, columns) of a view of a display-frame volume of `shape`."""
    nz, ny, nx = shape
    return {"axial": (ny, nx), "coronal": (nz, nx), "sagittal": (nz, ny)}[plane.view]


def extent_mm(shape: Sequence[int], plane: Slice2D) -> tuple[float, float]:
    """(width, height) in mm of a view of a display-frame volume of `shape`."""
    rows, cols = view_shape(shape, plane)
    return cols * plane.col_spacing, rows * plane.row_spacing


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    boxes = ndimage.find_objects(mask.view(np.uint8))
    return boxes[0] if boxes and boxes[0] is not None else None


def _inside(mask: np.ndarray, point: tuple[int, ...], spacing: Sequence[float]) -> tuple[int, ...]:
    """`point` if it lies in `mask`, else the mask voxel nearest to it (in mm)."""
    if mask[point]:
        return point
    voxels = np.argwhere(mask)
    distances = (((voxels - np.asarray(point)) * np.asarray(spacing)) ** 2).sum(axis=1)
    return tuple(int(v) for v in voxels[int(np.argmin(distances))])


def volume_center(shape: Sequence[int]) -> tuple[int, int, int]:
    """The middle voxel of a volume."""
    return tuple(int(n) // 2 for n in shape)


def mask_center(mask: np.ndarray, spacing: Sequence[float]) -> tuple[int, int, int] | None:
    """Centre of a mask (its centroid, moved to the nearest mask voxel when it falls outside); None if empty."""
    box = _bounding_box(mask)
    if box is None:
        return None
    local = mask[box]
    point = _inside(local, tuple(int(round(c)) for c in ndimage.center_of_mass(local)), spacing)
    return tuple(p + s.start for p, s in zip(point, box))


def _block_counts(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(voxels of `mask` per block, block edge): 1-voxel blocks up to `_POOL_ABOVE` voxels, else 2x2x2 blocks."""
    if mask.size <= _POOL_ABOVE:
        return mask.astype(np.uint8), 1
    padded = np.pad(mask, [(0, n % 2) for n in mask.shape])
    z, y, x = (n // 2 for n in padded.shape)
    return padded.reshape(z, 2, y, 2, x, 2).sum(axis=(1, 3, 5), dtype=np.uint8), 2


def largest_component_center(mask: np.ndarray) -> tuple[tuple[int, int, int], int] | None:
    """(centroid, voxel count) of the largest 26-connected component of `mask`; None if empty.

    Large masks are first pooled into 2x2x2 blocks (components closer than 2 voxels merge), which keeps
    this fast on 512x512 CT; the voxel counts and the weighted centroid stay exact for each component.
    """
    box = _bounding_box(mask)
    if box is None:
        return None
    counts, block = _block_counts(mask[box])
    labels, count = ndimage.label(counts > 0, structure=np.ones((3, 3, 3), bool))
    sizes = ndimage.sum_labels(counts, labels, index=np.arange(1, count + 1))
    largest = int(np.argmax(sizes)) + 1
    local = ndimage.center_of_mass(counts, labels, largest)
    center = tuple(int(round(c * block + (block - 1) / 2 + s.start)) for c, s in zip(local, box))
    return tuple(min(c, n - 1) for c, n in zip(center, mask.shape)), int(sizes[largest - 1])


def intensity_window(image: np.ndarray, ct: bool) -> tuple[float, float]:
    """(vmin, vmax): CT soft-tissue window (level 40, width 400 HU) or the 0.5–99.5 percentiles (other modalities)."""
    if ct:
        level, width = CT_WINDOW
        return level - width / 2, level + width / 2
    step = max(1, int(np.ceil((image.size / _SAMPLE_VOXELS) ** (1 / 3))))
    sample = image[::step, ::step, ::step]
    low, high = np.percentile(sample, PERCENTILES)
    return float(low), (float(high) if high > low else float(low) + 1.0)


def looks_like_ct(image: np.ndarray) -> bool:
    """Intensities in Hounsfield units (air near -1000) when the modality is not known."""
    step = max(1, int(np.ceil((image.size / _SAMPLE_VOXELS) ** (1 / 3))))
    return float(np.percentile(image[::step, ::step, ::step], PERCENTILES[0])) <= -500.0
