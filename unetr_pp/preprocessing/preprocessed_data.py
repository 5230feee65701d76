"""Reading preprocessed cases (`load_case`) and preprocessing raw images for prediction."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from unetr_pp.io import read_case_channels
from unetr_pp.io.plans import Plans
from unetr_pp.preprocessing.cropping import crop_channels, crop_properties
from unetr_pp.preprocessing.preprocessor import preprocess_data
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json


@dataclass
class PreprocessedCase:
    """data float32 (C, z, y, x), seg int (1, z, y, x), properties dict, class -> (n, 3) int32 locations."""

    data: np.ndarray
    seg: np.ndarray
    properties: dict
    class_locations: dict[int, np.ndarray]


def load_case(folder: str | os.PathLike, case_id: str, mmap: bool = True) -> PreprocessedCase:
    """Load `<case>.npy`, `<case>_seg.npy`, `<case>.json`, `<case>_fg.npz` from a configuration folder."""
    folder = Path(folder)
    files = [folder / f"{case_id}{suffix}" for suffix in (".npy", "_seg.npy", ".json", "_fg.npz")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UnetrPPError(f"preprocessed case {case_id!r} is incomplete, missing: {', '.join(missing)}")
    mode = "r" if mmap else None
    data, seg = np.load(files[0], mmap_mode=mode), np.load(files[1], mmap_mode=mode)
    with np.load(files[3]) as npz:
        locations = {int(k.split("_", 1)[1]): npz[k] for k in npz.files}
    return PreprocessedCase(data, seg, load_json(files[2]), locations)


def preprocess_case_for_inference(
    image_paths: Sequence[str | os.PathLike], plans: Plans, configuration: str
) -> tuple[np.ndarray, dict]:
    """Raw channel files of one case -> (float32 (C, z, y, x) preprocessed like training data, properties).

    The properties (geometry, original_shape, bbox, transpose_forward, ...) are what export needs to put
    a prediction back into the original geometry.
    """
    channels, geometry = read_case_channels(image_paths)
    case_id = Path(image_paths[0]).name.split(".")[0].rsplit("_", 1)[0]
    original_shape = channels[0].shape
    cropped, seg, bbox = crop_channels(channels)
    return preprocess_data(cropped, seg, crop_properties(case_id, geometry, original_shape, bbox), plans, configuration)
