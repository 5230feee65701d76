"""Per-case metrics for every target: Dice, HD95 (medpy-exact, cropped), TP/FP/FN, volumes.

Bounding boxes of every label come from ONE pass over each label volume (`find_objects`); a target
then only touches the crop around its reference and predicted voxels.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import numpy as np
from scipy.ndimage import find_objects

from unetr_pp.evaluation.protocols import Target, as_targets
from unetr_pp.evaluation.surface import crop_box, hd95_cropped
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.parallel import usable_cpus

HD95_UNITS = ("mm", "voxel")
EMPTY_CONVENTIONS = ("nan", "unetrpp")
METRIC_KEYS = ("Dice", "HD95", "TP", "FP", "FN", "n_ref", "n_pred", "vol_ref_ml", "vol_pred_ml")
# (Dice, HD95) when both masks are empty / exactly one is empty
_EMPTY_VALUES = {
    "nan": {"both": (math.nan, math.nan), "one": (0.0, math.nan)},
    "unetrpp": {"both": (1.0, 0.0), "one": (0.0, 0.0)},
}

Boxes = dict[int, tuple[slice, ...]]


def label_bounding_boxes(volume: np.ndarray) -> Boxes:
    """{label: bounding box slices} of every label value > 0 present in an integer `volume`, one pass."""
    if volume.size == 0:
        return {}
    top = int(volume.max())
    if top <= 0:
        return {}
    return {i + 1: box for i, box in enumerate(find_objects(volume, max_label=top)) if box is not None}


def case_bounding_boxes(reference: np.ndarray, prediction: np.ndarray, threads: int = 1) -> tuple[Boxes, Boxes]:
    """`label_bounding_boxes` of both volumes, the two passes in two threads when `threads` > 1."""
    if threads <= 1:
        return label_bounding_boxes(reference), label_bounding_boxes(prediction)
    with ThreadPoolExecutor(2) as pool:
        ref_boxes, pred_boxes = pool.map(label_bounding_boxes, (reference, prediction))
    return ref_boxes, pred_boxes


def _check_inputs(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], hd95_unit: str, empty: str) -> None:
    if reference.shape != prediction.shape:
        raise UnetrPPError(f"reference shape {reference.shape} differs from prediction shape {prediction.shape}")
    if len(spacing) != reference.ndim:
        raise UnetrPPError(f"spacing {tuple(spacing)} has {len(spacing)} values for a {reference.ndim}D image")
    for name, array in (("reference", reference), ("prediction", prediction)):
        if array.dtype.kind not in "biu":
            raise UnetrPPError(f"{name} must be an integer label array, got dtype {array.dtype}")
    check_options(hd95_unit, empty)


def check_options(hd95_unit: str, empty: str) -> None:
    """UnetrPPError unless `hd95_unit` is mm/voxel and `empty` is nan/unetrpp."""
    if hd95_unit not in HD95_UNITS:
        raise UnetrPPError(f"HD95 unit must be one of {', '.join(HD95_UNITS)}, got {hd95_unit!r}")
    if empty not in EMPTY_CONVENTIONS:
        raise UnetrPPError(f"empty-mask convention must be one of {', '.join(EMPTY_CONVENTIONS)}, got {empty!r}")


def _target_mask(crop: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    return crop == ids[0] if len(ids) == 1 else np.isin(crop, ids)


def empty_target_metrics(empty: str) -> dict[str, float | int]:
    """Metrics of a target absent from both reference and prediction under convention `empty`."""
    dice, hd95 = _EMPTY_VALUES[empty]["both"]
    return dict(zip(METRIC_KEYS, (dice, hd95, 0, 0, 0, 0, 0, 0.0, 0.0)))


def _target_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    ids: tuple[int, ...],
    boxes: tuple[Boxes, Boxes],
    sampling: tuple[float, ...] | None,
    voxel_ml: float,
    empty: str,
) -> dict[str, float | int]:
    found = [b[i] for b in boxes for i in ids if i in b]
    if not found:
        return empty_target_metrics(empty)
    box = crop_box(found, reference.shape)
    ref = _target_mask(reference[box], ids)
    pred = _target_mask(prediction[box], ids)
    n_ref, n_pred = int(np.count_nonzero(ref)), int(np.count_nonzero(pred))
    tp = int(np.count_nonzero(ref & pred))
    if n_ref and n_pred:
        dice, hd95 = 2.0 * tp / float(n_ref + n_pred), hd95_cropped(ref, pred, sampling)
    else:
        dice, hd95 = _EMPTY_VALUES[empty]["one"]
    values = (dice, hd95, tp, n_pred - tp, n_ref - tp, n_ref, n_pred, n_ref * voxel_ml, n_pred * voxel_ml)
    return dict(zip(METRIC_KEYS, values))


def compute_case_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    labels_or_regions: Sequence[Target] | Mapping[str, int | Sequence[int]] | Sequence[int],
    hd95_unit: str = "mm",
    empty: str = "nan",
    boxes: tuple[Boxes, Boxes] | None = None,
    threads: int | None = None,
) -> dict[str, dict[str, float | int]]:
    """Metrics per target for integer label arrays `reference`/`prediction` (same shape, e.g. (z, y, x)).

    `spacing` (mm, array axis order) scales HD95 when `hd95_unit == "mm"` and gives the volumes in
    ml; `labels_or_regions`: Targets, {name: id or [ids]} or label ids; `empty`: "nan" or
    "unetrpp" (docs/evaluation.md); `boxes`: precomputed `label_bounding_boxes` of (reference,
    prediction); `threads` > 1 computes the bounding boxes and the targets in that many threads
    (scipy's `find_objects` and distance transform release the GIL; None: one per usable core, at most
    one per target). Returns {name: {Dice, HD95, TP, FP, FN, n_ref, n_pred, vol_ref_ml, vol_pred_ml}}
    with NaN for undefined values.
    """
    reference, prediction = np.asarray(reference), np.asarray(prediction)
    _check_inputs(reference, prediction, spacing, hd95_unit, empty)
    targets = as_targets(labels_or_regions)
    if threads is None:
        threads = min(usable_cpus(), len(targets))
    spacing = tuple(float(s) for s in spacing)
    sampling = spacing if hd95_unit == "mm" else None
    voxel_ml = math.prod(spacing) / 1000.0
    if boxes is None:
        boxes = case_bounding_boxes(reference, prediction, threads)

    def one(target: Target) -> dict[str, float | int]:
        return _target_metrics(reference, prediction, target.ids, boxes, sampling, voxel_ml, empty)

    if threads <= 1:
        return {t.name: one(t) for t in targets}
    with ThreadPoolExecutor(threads) as pool:
        return {t.name: metrics for t, metrics in zip(targets, pool.map(one, targets))}
