"""Keep only the largest connected component of a label set (nnU-Net's postprocessing) and its postprocessing.json.

Components are 26-connected (full 3x3x3 neighbourhood, as nnU-Net v2 through acvl_utils/skimage);
when several components share the largest size, all of them are kept (as acvl_utils does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import find_objects, label

from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

POSTPROCESSING_FILE = "postprocessing.json"
Step = tuple[int, ...]


def keep_largest_component(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """(z, y, x) labels -> a copy where voxels of `ids` outside the largest component of their union are 0."""
    out = np.array(labels, copy=True)
    mask = out == ids[0] if len(ids) == 1 else np.isin(out, ids)
    box = find_objects(mask.view(np.uint8))
    if not box:
        return out
    crop = mask[box[0]]
    components, count = label(crop, structure=np.ones((3,) * crop.ndim, dtype=bool))
    if count <= 1:
        return out
    sizes = np.bincount(components.ravel())[1:]
    drop = np.flatnonzero(sizes < sizes.max()) + 1
    region = out[box[0]]
    region[np.isin(components, drop)] = 0
    return out


def apply_postprocessing(labels: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Apply `keep_largest_component` for each step's label ids, in order; no steps -> `labels` unchanged."""
    for ids in steps:
        labels = keep_largest_component(labels, ids)
    return labels


def read_postprocessing(path: str | Path) -> tuple[Step, ...]:
    """The steps (label id tuples) of a postprocessing.json; UnetrPPError naming the file when malformed."""
    content = load_json(path)
    try:
        steps = tuple(tuple(int(i) for i in step["ids"]) for step in content["steps"])
    except (KeyError, TypeError, ValueError):
        raise UnetrPPError(f"{path}: expected {{\"steps\": [{{\"ids\": [label ids], ...}}, ...]}}") from None
    if any(not step or min(step) < 1 for step in steps):
        raise UnetrPPError(f"{path}: every step needs positive label ids")
    return steps
