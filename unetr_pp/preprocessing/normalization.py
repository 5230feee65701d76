"""Intensity normalization schemes (nnU-Net v2 semantics), one per channel.

- CTNormalization: clip to the dataset's foreground 0.5/99.5 percentiles, then (x - fg mean) / fg std.
- ZScoreNormalization: per image (x - mean) / std; with `use_mask_for_norm` the statistics and the
  change are restricted to the nonzero mask (seg >= 0), voxels outside stay as they are (0).
- NoNormalization: cast to float32.
- FixedWindowNormalization: a fixed intensity window as MONAI `ScaleIntensityRange(a_min, a_max, b_min, b_max,
  clip=True)` (the MONAI / 3D UX-Net seeds' preprocessing; the window comes from the plans' `intensity_windows`).
A channel named "CT" (any case) gets CTNormalization, "noNorm" NoNormalization, anything else z-score.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from unetr_pp.utilities.errors import UnetrPPError

EPS = 1e-8
SCHEMES = ("CTNormalization", "ZScoreNormalization", "NoNormalization", "FixedWindowNormalization")
# z-score leaves voxels outside the mask at 0 when the mask is used, so only it may use the mask
USES_MASK = {"CTNormalization": False, "ZScoreNormalization": True, "NoNormalization": False,
             "FixedWindowNormalization": False}


def scheme_for_channel(channel_name: str) -> str:
    """Channel name from dataset.json -> normalization scheme name."""
    name = channel_name.casefold()
    if name == "ct":
        return "CTNormalization"
    if name in ("nonorm", "none"):
        return "NoNormalization"
    return "ZScoreNormalization"


def ct_normalize(image: np.ndarray, properties: dict) -> np.ndarray:
    """(z, y, x) -> float32: clip to fg [0.5, 99.5] percentiles, subtract fg mean, divide by fg std."""
    image = np.array(image, dtype=np.float32)
    _ct_normalize_in_place(image, properties)
    return image


def _ct_normalize_in_place(image: np.ndarray, properties: dict) -> None:
    np.clip(image, properties["percentile_00_5"], properties["percentile_99_5"], out=image)
    image -= np.float32(properties["mean"])
    image /= np.float32(max(properties["std"], EPS))


def _std(values: np.ndarray, mean: float, chunk: int = 1 << 22) -> float:
    """Standard deviation of float32 `values` around `mean`, accumulated in float64 chunk by chunk (no
    float64 copy of the volume; equal to `values.std(dtype=np.float64)` up to float64 rounding)."""
    flat = values.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, chunk):
        d = flat[start:start + chunk].astype(np.float64)
        d -= mean
        total += float(np.dot(d, d))
    return float(np.sqrt(total / max(flat.size, 1)))


def zscore_normalize(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(z, y, x) -> float32 z-score over all voxels, or only inside `mask` (bool, same shape)."""
    image = np.array(image, dtype=np.float32)
    _zscore_in_place(image, mask)
    return image


def _zscore_in_place(image: np.ndarray, mask: np.ndarray | None) -> None:
    values = image if mask is None else image[mask]
    if not values.size:
        return
    mean = values.mean(dtype=np.float64)
    std = _std(values, mean)
    del values
    m32, s32 = np.float32(mean), np.float32(max(std, EPS))
    if mask is None:
        image -= m32
        image /= s32
    else:
        np.subtract(image, m32, out=image, where=mask)
        np.divide(image, s32, out=image, where=mask)


def window_normalize_in_place(image: np.ndarray, window: Mapping[str, float]) -> None:
    """float32 (z, y, x) in place, as MONAI ScaleIntensityRange: (x - a_min) / (a_max - a_min) * (b_max - b_min)
    + b_min, clipped to [b_min, b_max]."""
    image -= np.float32(window["a_min"])
    image /= np.float32(window["a_max"] - window["a_min"])
    image *= np.float32(window["b_max"] - window["b_min"])
    image += np.float32(window["b_min"])
    np.clip(image, window["b_min"], window["b_max"], out=image)


def normalize_in_place(
    image: np.ndarray, channel: int, scheme: str, mask: np.ndarray | None, intensity_properties: dict,
    intensity_windows: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """Normalize one float32 channel (z, y, x) in place with `scheme`; `mask` (bool) restricts z-score;
    `intensity_windows` ({"<channel>": {a_min, a_max, b_min, b_max}}) holds FixedWindowNormalization's windows."""
    if scheme == "FixedWindowNormalization":
        window = (intensity_windows or {}).get(str(channel))
        if window is None:
            raise UnetrPPError(f"FixedWindowNormalization of channel {channel} needs intensity_windows in the plans")
        window_normalize_in_place(image, window)
    elif scheme == "CTNormalization":
        props = intensity_properties.get(str(channel))
        if props is None:
            raise UnetrPPError(f"CTNormalization of channel {channel} needs foreground intensity properties "
                               f"in the plans")
        _ct_normalize_in_place(image, props)
    elif scheme == "ZScoreNormalization":
        _zscore_in_place(image, mask)
    elif scheme != "NoNormalization":
        raise UnetrPPError(f"unknown normalization scheme {scheme!r} (known: {', '.join(SCHEMES)})")


def check_schemes(schemes: Sequence[str], use_mask_for_norm: Sequence[bool], num_channels: int) -> None:
    """UnetrPPError unless there is one scheme and one mask flag per channel."""
    if len(schemes) != num_channels or len(use_mask_for_norm) != num_channels:
        raise UnetrPPError(f"plans give {len(schemes)} normalization scheme(s) for {num_channels} channel(s)")


def normalize(
    data: np.ndarray,
    seg: np.ndarray | None,
    schemes: Sequence[str],
    use_mask_for_norm: Sequence[bool],
    intensity_properties: dict,
    intensity_windows: Mapping[str, Mapping[str, float]] | None = None,
) -> np.ndarray:
    """Normalize each channel of data (C, z, y, x) -> float32; seg (1, z, y, x) gives the mask (seg >= 0).

    `intensity_properties` maps the channel index as a string ("0") to its foreground statistics.
    """
    check_schemes(schemes, use_mask_for_norm, data.shape[0])
    out = np.array(data, dtype=np.float32)
    for c, (scheme, use_mask) in enumerate(zip(schemes, use_mask_for_norm)):
        mask = seg[0] >= 0 if use_mask and seg is not None else None
        normalize_in_place(out[c], c, scheme, mask, intensity_properties, intensity_windows)
    return out
