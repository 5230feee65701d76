"""Export predictions to the original image geometry: resample, labels, uncrop, transpose back, write.

Probabilities arrive in the preprocessed space (transposed axes, spacing of the plans, cropped). They
are resampled to the cropped original shape (linear, the out-of-plane axis separately with nearest
when the spacing is anisotropic, as nnU-Net does), turned into labels (argmax, or region thresholds
written in `regions_class_order`), transposed back, put into the uncropped volume (background elsewhere)
and written with the input's spacing, origin and direction.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from unetr_pp.io.images import Geometry, image_ending, write_image
from unetr_pp.inference.postprocessing import Step, apply_postprocessing
from unetr_pp.inference.label_map import LabelMap
from unetr_pp.preprocessing.resampling import ANISOTROPY_THRESHOLD, resample_to_spacing
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path, save_json

PROBABILITY_ORDER = 1  # linear in-plane; the separate axis (if any) uses nearest, as nnU-Net's export
LABEL_SLAB_VOXELS = 2 ** 18  # voxels per argmax slab (bounds its int64 index buffer)


def probabilities_to_labels(probabilities: np.ndarray, regions_class_order: Sequence[int] | None) -> np.ndarray:
    """(K, z, y, x) -> (z, y, x) labels: argmax, or for regions each sigmoid > 0.5 writes its label in order.

    uint8 (uint16 when a label exceeds 255); the argmax runs slab by slab along z, so no int64 volume is made.
    """
    if regions_class_order is None:
        dtype = np.uint8 if probabilities.shape[0] <= 256 else np.uint16
        labels = np.empty(probabilities.shape[1:], dtype=dtype)
        step = max(1, LABEL_SLAB_VOXELS // max(1, int(np.prod(probabilities.shape[2:]))))
        for z in range(0, labels.shape[0], step):
            labels[z : z + step] = probabilities[:, z : z + step].argmax(0)
    else:
        if len(regions_class_order) != probabilities.shape[0]:
            raise UnetrPPError(f"regions_class_order {list(regions_class_order)} has {len(regions_class_order)} "
                               f"entries but the network predicts {probabilities.shape[0]} regions")
        dtype = np.uint8 if max(regions_class_order, default=0) < 256 else np.uint16
        labels = np.zeros(probabilities.shape[1:], dtype=dtype)
        for region, label in zip(probabilities, regions_class_order):
            labels[region > 0.5] = label
    return labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16, copy=False)


def _uncrop(array: np.ndarray, properties: dict, background: np.ndarray | None = None) -> np.ndarray:
    """(..., cropped z, y, x) -> (..., original z, y, x): zeros, or per-channel `background`, outside the crop box."""
    out = np.zeros(array.shape[:-3] + tuple(int(s) for s in properties["original_shape"]), dtype=array.dtype)
    if background is not None:
        out[...] = background.reshape(-1, 1, 1, 1)
    box = tuple(slice(int(lo), int(hi)) for lo, hi in properties["bbox"])
    out[(...,) + box] = array
    return out


def _to_original_axes(array: np.ndarray, transpose_forward: Sequence[int]) -> np.ndarray:
    """Undo `transpose_forward` on the last three axes."""
    backward = [int(i) for i in np.argsort(transpose_forward)]
    lead = list(range(array.ndim - 3))
    return array.transpose(lead + [len(lead) + b for b in backward])


def check_properties(properties: dict) -> None:
    """Raise UnetrPPError naming the case when export keys are missing from its properties."""
    needed = ("geometry", "original_shape", "bbox", "shape_after_cropping", "original_spacing",
              "transpose_forward", "spacing_after_resampling")
    missing = [k for k in needed if k not in properties]
    if missing:
        raise UnetrPPError(f"case {properties.get('case_id', '?')}: properties lack {', '.join(missing)}")


def export_prediction(probabilities: np.ndarray, properties: dict, output_file: str | os.PathLike,
                      regions_class_order: Sequence[int] | None = None, save_probabilities: bool = False,
                      separate_z_threshold: float = ANISOTROPY_THRESHOLD, postprocessing: Sequence[Step] = (),
                      label_map: LabelMap | None = None) -> None:
    """Write (K, z, y, x) preprocessed-space probabilities as a label image in the case's original geometry.

    The labels get the largest-component `postprocessing` steps, then `label_map` (the probabilities
    are written as predicted). Components are found inside the crop box, which only drops background.

    With `save_probabilities`, also `<case>.npz` (key `probabilities`, (K, z, y, x) original axes and shape)
    and `<case>.json` (the properties) beside the image.
    """
    check_properties(properties)
    output_file = Path(output_file)
    transpose = [int(t) for t in properties["transpose_forward"]]
    cropped_shape = [int(properties["shape_after_cropping"][t]) for t in transpose]
    target_spacing = [float(properties["original_spacing"][t]) for t in transpose]
    probs = resample_to_spacing(probabilities, properties["spacing_after_resampling"], target_spacing, is_seg=False,
                                order=PROBABILITY_ORDER, order_z=0, threshold=separate_z_threshold,
                                new_shape=cropped_shape)
    labels = apply_postprocessing(probabilities_to_labels(probs, regions_class_order), postprocessing)
    if label_map is not None:
        labels = label_map.apply(labels)
    labels = _uncrop(_to_original_axes(labels, transpose), properties)
    write_image(labels, Geometry.from_json(properties["geometry"]), output_file)
    if save_probabilities:
        background = np.zeros(len(probs), dtype=np.float32)
        if regions_class_order is None:
            background[0] = 1.0
        full = _uncrop(_to_original_axes(probs, transpose), properties, background)
        stem = output_file.name[: -len(image_ending(output_file))]
        with atomic_path(output_file.with_name(stem + ".npz"), suffix=".npz") as tmp:
            np.savez_compressed(tmp, probabilities=full.astype(probabilities.dtype, copy=False))
        save_json(properties, output_file.with_name(stem + ".json"))
