"""Dataset presets (JSON data in `presets/`) and `--override key=value` applied on top of planned plans,
followed by validation of the result.

A preset holds `3d_fullres` keys (patch_size, batch_size, pool_op_kernel_sizes, network_kwargs) and
optionally `preset_splits`. Overrides are `key=value` with a JSON value (a bare word is a string) and a
dotted key into the 3d_fullres configuration (`patch_size=[32,64,64]`,
`network_kwargs.unetr_pp.stem_stride=[1,4,4]`). When the patch size changes without an explicit
pooling, the pooling/conv topology is re-derived for the new patch by the planner's rule.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from unetr_pp.planning.topology import conv_kernels_for_pooling, get_pool_and_conv_props
from unetr_pp.preprocessing.normalization import SCHEMES
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json

PRESET_DIR = Path(__file__).parent / "presets"
CONFIG = "3d_fullres"
CONFIG_KEYS = ("data_identifier", "spacing", "patch_size", "batch_size", "median_shape", "normalization_schemes",
               "use_mask_for_norm", "resampling", "pool_op_kernel_sizes", "conv_kernel_sizes", "num_classes",
               "num_input_channels", "network_kwargs", "next_stage")


def available_presets() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> dict:
    """The preset `name` as a dict (UnetrPPError listing the known ones when it does not exist)."""
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise UnetrPPError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return load_json(path)


def parse_override(text: str) -> tuple[str, Any]:
    """'a.b=[1,2]' -> ('a.b', [1, 2]); a value that is not JSON is kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UnetrPPError(f"override {text!r} is not of the form key=value (e.g. patch_size=[32,64,64])")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw.strip()
    return key, value


def _set_dotted(config: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    if parts[0] not in CONFIG_KEYS:
        raise UnetrPPError(f"override {key!r}: unknown key {parts[0]!r}; known keys: {', '.join(CONFIG_KEYS)}")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UnetrPPError(f"override {key!r}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = value


def _merge(config: dict, updates: dict) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _merge(config[key], value)
        else:
            config[key] = copy.deepcopy(value)


def _retopologize(config: dict, explicit: set[str]) -> None:
    """Re-derive pooling/conv kernels after the patch or pooling changed (unless given explicitly)."""
    spacing = config["spacing"]
    if "pool_op_kernel_sizes" not in explicit and "patch_size" in explicit:
        topo = get_pool_and_conv_props(spacing, config["patch_size"])
        if list(topo.patch_size) == list(config["patch_size"]):
            config["pool_op_kernel_sizes"] = [list(p) for p in topo.pool_op_kernel_sizes]
            explicit.add("pool_op_kernel_sizes")
    if "conv_kernel_sizes" not in explicit and "pool_op_kernel_sizes" in explicit:
        config["conv_kernel_sizes"] = [list(k) for k in conv_kernels_for_pooling(spacing, config["pool_op_kernel_sizes"])]


def apply_preset_and_overrides(plans: dict, preset: str | None, overrides: Sequence[str]) -> dict:
    """A copy of `plans` with the preset and the overrides applied to 3d_fullres, validated."""
    plans = copy.deepcopy(plans)
    config = plans["configurations"][CONFIG]
    explicit: set[str] = set()
    if preset:
        data = load_preset(preset)
        _merge(config, data.get(CONFIG, {}))
        explicit.update(data.get(CONFIG, {}))
        plans["preset"] = preset
        if data.get("preset_splits"):
            plans["preset_splits"] = data["preset_splits"]
    parsed = [parse_override(o) for o in overrides]
    for key, value in parsed:
        _set_dotted(config, key, value)
        explicit.add(key.split(".")[0])
    plans["overrides"] = {key: value for key, value in parsed}
    if explicit & {"patch_size", "pool_op_kernel_sizes", "spacing"} and _geometry_ok(config):
        _retopologize(config, explicit)
    problems = []
    for name, cfg in plans["configurations"].items():
        problems += [f"{name}: {p}" for p in validate_configuration(cfg)]
    if problems:
        what = f"preset {preset!r} / overrides" if preset else "overrides"
        raise problems_error(f"invalid plans after applying the {what}", problems)
    return plans


def _int_list(value: Any, length: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _geometry_ok(config: dict) -> bool:
    spacing = config.get("spacing")
    return _int_list(config.get("patch_size"), 3) and isinstance(spacing, list) and len(spacing) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in spacing)


def validate_configuration(config: dict) -> list[str]:
    """Problems of one plans configuration (empty list when it is usable)."""
    problems = []
    spacing, patch, pools = config.get("spacing"), config.get("patch_size"), config.get("pool_op_kernel_sizes")
    if not (isinstance(spacing, list) and len(spacing) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in spacing)):
        problems.append(f"spacing must be 3 numbers > 0, got {spacing!r}")
    if not _int_list(patch, 3):
        problems.append(f"patch_size must be 3 positive integers, got {patch!r}")
    batch = config.get("batch_size")
    if not (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0):
        problems.append(f"batch_size must be a positive integer, got {batch!r}")
    if not (isinstance(pools, list) and all(isinstance(p, list) and len(p) == 3 and all(v in (1, 2) for v in p)
                                            for p in pools)):
        problems.append(f"pool_op_kernel_sizes must be a list of [a, b, c] with entries 1 or 2, got {pools!r}")
        pools = None
    convs = config.get("conv_kernel_sizes")
    if pools is not None and (not isinstance(convs, list) or len(convs) != len(pools) + 1):
        problems.append(f"conv_kernel_sizes needs {len(pools) + 1} entries (pooling count + 1), got {convs!r}")
    if pools is not None and _int_list(patch, 3):
        stride = [int(v) for v in np.prod(np.asarray(pools, dtype=int).reshape(-1, 3), axis=0)]
        if any(p % s for p, s in zip(patch, stride)):
            problems.append(f"patch_size {patch} is not divisible by the total pooling stride {stride} "
                            f"of pool_op_kernel_sizes {pools}")
    stem = ((config.get("network_kwargs") or {}).get("unetr_pp") or {}).get("stem_stride")
    if stem is not None and _int_list(patch, 3):
        if not _int_list(stem, 3):
            problems.append(f"network_kwargs.unetr_pp.stem_stride must be 3 positive integers, got {stem!r}")
        elif any(p % (8 * s) for p, s in zip(patch, stem)):
            problems.append(f"patch_size {patch} is not divisible by the UNETR++ total stride "
                            f"{[8 * s for s in stem]} (stem_stride {stem} x 8)")
    channels = config.get("num_input_channels")
    schemes, use_mask = config.get("normalization_schemes"), config.get("use_mask_for_norm")
    if not (isinstance(schemes, list) and len(schemes) == channels and all(s in SCHEMES for s in schemes)):
        problems.append(f"normalization_schemes must list one of {', '.join(SCHEMES)} per input channel "
                        f"({channels}), got {schemes!r}")
    if not (isinstance(use_mask, list) and len(use_mask) == channels and all(isinstance(v, bool) for v in use_mask)):
        problems.append(f"use_mask_for_norm must be {channels} booleans, got {use_mask!r}")
    return problems
