"""Intensity normalization schemes (nnU-Net v2 semantics), one per channel.

- CTNormalization: clip to the dataset's foreground 0.5/99.5 percentiles, then (x - fg mean) / fg std.
- ZScoreNormalization: per image (x - mean) / std; with `use_mask_for_norm` the statistics and the
  change are restricted to the nonzero mask (seg >= 0), voxels outside stay as they are (0).
- NoNormalization: cast to float32.
A channel named "CT" (any case) gets CTNormalization, "noNorm" NoNormalization, anything else z-score.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from unetr_pp.utilities.errors import UnetrPPError

EPS = 1e-8
SCHEMES = ("CTNormalization", "ZScoreNormalization", "NoNormalization")
# z-score leaves voxels outside the mask at 0 when the mask is used, so only it may use the mask
USES_MASK = {"CTNormalization": False, "ZScoreNormalization": True, "NoNormalization": False}


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
    image = np.clip(image.astype(np.float32, copy=False), properties["percentile_00_5"], properties["percentile_99_5"])
    image -= np.float32(properties["mean"])
    image /= np.float32(max(properties["std"], EPS))
    return image


def zscore_normalize(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(z, y, x) -> float32 z-score over all voxels, or only inside `mask` (bool, same shape)."""
    image = np.array(image, dtype=np.float32)
    if mask is None:
        mean, std = image.mean(dtype=np.float64), image.std(dtype=np.float64)
        image -= np.float32(mean)
        image /= np.float32(max(std, EPS))
        return image
    values = image[mask]
    if values.size:
        mean, std = values.mean(dtype=np.float64), values.std(dtype=np.float64)
        image[mask] = (values - np.float32(mean)) / np.float32(max(std, EPS))
    return image


def normalize(
    data: np.ndarray,
    seg: np.ndarray | None,
    schemes: Sequence[str],
    use_mask_for_norm: Sequence[bool],
    intensity_properties: dict,
) -> np.ndarray:
    """Normalize each channel of data (C, z, y, x) -> float32; seg (1, z, y, x) gives the mask (seg >= 0).

    `intensity_properties` maps the channel index as a string ("0") to its foreground statistics.
    """
    if len(schemes) != data.shape[0] or len(use_mask_for_norm) != data.shape[0]:
        raise UnetrPPError(f"plans give {len(schemes)} normalization scheme(s) for {data.shape[0]} channel(s)")
    out = np.empty(data.shape, dtype=np.float32)
    for c, (scheme, use_mask) in enumerate(zip(schemes, use_mask_for_norm)):
        if scheme == "CTNormalization":
            props = intensity_properties.get(str(c))
            if props is None:
                raise UnetrPPError(f"CTNormalization of channel {c} needs foreground intensity properties in the plans")
            out[c] = ct_normalize(data[c], props)
        elif scheme == "ZScoreNormalization":
            out[c] = zscore_normalize(data[c], seg[0] >= 0 if use_mask and seg is not None else None)
        elif scheme == "NoNormalization":
            out[c] = data[c]
        else:
            raise UnetrPPError(f"unknown normalization scheme {scheme!r} (known: {', '.join(SCHEMES)})")
    return out
