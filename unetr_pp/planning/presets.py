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

from unetr_pp.io.plans import CONFIGURATION_KEYS, Configuration, Plans, configuration_problems
from unetr_pp.planning.topology import conv_kernels_for_pooling, get_pool_and_conv_props
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json

PRESET_DIR = Path(__file__).parent / "presets"
CONFIG = "3d_fullres"


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
    if parts[0] not in CONFIGURATION_KEYS:
        raise UnetrPPError(f"override {key!r}: unknown key {parts[0]!r}; known keys: {', '.join(CONFIGURATION_KEYS)}")
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


def merge_preset_and_overrides(plans: Plans, preset: str | None, overrides: Sequence[str]) -> Plans:
    """`plans` with the preset and the overrides applied to 3d_fullres, validated (network settings excepted).

    Architecture settings in network_kwargs are each network's to check (networks.registry.network_problems).
    """
    config = plans.configuration(CONFIG).to_json()
    explicit: set[str] = set()
    top: dict[str, Any] = {}
    if preset:
        data = load_preset(preset)
        _merge(config, data.get(CONFIG, {}))
        explicit.update(data.get(CONFIG, {}))
        top["preset"] = preset
        if data.get("preset_splits"):
            top["preset_splits"] = data["preset_splits"]
    parsed = [parse_override(o) for o in overrides]
    for key, value in parsed:
        _set_dotted(config, key, value)
        explicit.add(key.split(".")[0])
    top["overrides"] = {key: value for key, value in parsed}
    if explicit & {"patch_size", "pool_op_kernel_sizes", "spacing"} and _geometry_ok(config):
        _retopologize(config, explicit)
    problems = [f"{CONFIG}: {p}" for p in configuration_problems(config) + _stride_problems(config)]
    if problems:
        what = f"preset {preset!r} / overrides" if preset else "overrides"
        raise problems_error(f"invalid plans after applying the {what}", problems)
    return plans.replace(**top).with_configuration(Configuration.from_json(CONFIG, config))


def _stride_problems(config: dict) -> list[str]:
    """The patch must be divisible by the total stride of the pooling (checked where presets and overrides meet)."""
    patch, pools = config.get("patch_size"), config.get("pool_op_kernel_sizes")
    if not (_geometry_ok(config) and isinstance(pools, list) and all(
            isinstance(p, list) and len(p) == 3 and all(v in (1, 2) for v in p) for p in pools)):
        return []
    stride = [int(v) for v in np.prod(np.asarray(pools, dtype=int).reshape(-1, 3), axis=0)]
    if any(p % s for p, s in zip(patch, stride)):
        return [f"patch_size {patch} is not divisible by the total pooling stride {stride} "
                f"of pool_op_kernel_sizes {pools}"]
    return []


def _geometry_ok(config: dict) -> bool:
    spacing, patch = config.get("spacing"), config.get("patch_size")
    return (isinstance(patch, list) and len(patch) == 3 and all(isinstance(v, int) and v > 0 for v in patch)
            and isinstance(spacing, list) and len(spacing) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in spacing))
