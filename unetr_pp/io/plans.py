"""The plans file as typed, validated objects: `Plans` with one `Configuration` per planned configuration.

`Plans.from_json` / `Plans.load` validate once and `to_json` writes the layout of docs/architecture.md
("Plans") unchanged, key order included, so plans files, checkpoint sidecars and preprocessed signatures
written before these types load and compare as they did.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping


from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json, save_json

NORMALIZATION_SCHEMES = ("CTNormalization", "ZScoreNormalization", "NoNormalization", "FixedWindowNormalization")
WINDOW_SCHEME = "FixedWindowNormalization"
WINDOW_KEYS = ("a_min", "a_max", "b_min", "b_max")
DEFAULT_ANISOTROPY_THRESHOLD = 3.0
CONFIGURATION_KEYS = ("data_identifier", "spacing", "patch_size", "batch_size", "pool_op_kernel_sizes",
                      "conv_kernel_sizes", "median_shape", "normalization_schemes", "use_mask_for_norm", "resampling",
                      "num_classes", "num_input_channels", "network_kwargs", "next_stage", "intensity_windows")
PLANS_KEYS = ("plans_identifier", "dataset_name", "channel_names", "labels", "regions", "regions_class_order",
              "original_median_spacing", "original_median_shape", "transpose_forward", "transpose_backward",
              "foreground_intensity_properties_per_channel", "preset", "overrides", "preset_splits", "configurations")
_REQUIRED_CONFIGURATION = CONFIGURATION_KEYS[:12]
_REQUIRED_PLANS = ("plans_identifier", "dataset_name", "labels", "transpose_forward", "transpose_backward",
                   "foreground_intensity_properties_per_channel", "configurations")


def _positive_ints(value: Any, length: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _positive_numbers(value: Any, length: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)


def configuration_problems(config: Mapping) -> list[str]:
    """Problems of one configuration's JSON (empty list when it is usable)."""
    problems = [f"missing key {key!r}" for key in _REQUIRED_CONFIGURATION if key not in config]
    if problems:
        return problems
    spacing, patch, pools = config["spacing"], config["patch_size"], config["pool_op_kernel_sizes"]
    if not _positive_numbers(spacing, 3):
        problems.append(f"spacing must be 3 numbers > 0, got {spacing!r}")
    if not _positive_ints(patch, 3):
        problems.append(f"patch_size must be 3 positive integers, got {patch!r}")
    batch = config["batch_size"]
    if not (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0):
        problems.append(f"batch_size must be a positive integer, got {batch!r}")
    if not (isinstance(pools, list) and all(isinstance(p, list) and len(p) == 3 and all(v in (1, 2) for v in p)
                                            for p in pools)):
        problems.append(f"pool_op_kernel_sizes must be a list of [a, b, c] with entries 1 or 2, got {pools!r}")
        pools = None
    convs = config["conv_kernel_sizes"]
    if pools is not None and (not isinstance(convs, list) or len(convs) != len(pools) + 1):
        problems.append(f"conv_kernel_sizes needs {len(pools) + 1} entries (pooling count + 1), got {convs!r}")
    channels = config["num_input_channels"]
    schemes, use_mask = config["normalization_schemes"], config["use_mask_for_norm"]
    if not (isinstance(schemes, list) and len(schemes) == channels and all(s in NORMALIZATION_SCHEMES
                                                                           for s in schemes)):
        problems.append(f"normalization_schemes must list one of {', '.join(NORMALIZATION_SCHEMES)} per input "
                        f"channel ({channels}), got {schemes!r}")
    if not (isinstance(use_mask, list) and len(use_mask) == channels and all(isinstance(v, bool) for v in use_mask)):
        problems.append(f"use_mask_for_norm must be {channels} booleans, got {use_mask!r}")
    if not isinstance(config.get("network_kwargs") or {}, dict):
        problems.append(f"network_kwargs must be a mapping, got {config['network_kwargs']!r}")
    if isinstance(schemes, list):
        problems += window_problems(schemes, config.get("intensity_windows") or {})
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def window_problems(schemes: list, windows: Any) -> list[str]:
    """Problems of `intensity_windows` {"<channel>": {a_min, a_max[, b_min, b_max]}}: one window for each channel
    normalized with FixedWindowNormalization (MONAI ScaleIntensityRange a_min..a_max -> b_min..b_max, clip), none
    for the others, a_min < a_max and b_min < b_max."""
    if not isinstance(windows, dict):
        return [f"intensity_windows must be a mapping channel -> window, got {windows!r}"]
    problems = []
    for c, scheme in enumerate(schemes):
        window = windows.get(str(c))
        if scheme == WINDOW_SCHEME and window is None:
            problems.append(f"channel {c} uses {WINDOW_SCHEME} but intensity_windows has no entry \"{c}\"")
        elif scheme != WINDOW_SCHEME and window is not None:
            problems.append(f"intensity_windows[\"{c}\"] is given but channel {c} uses {scheme}, not {WINDOW_SCHEME}")
        elif window is not None:
            full = {"b_min": 0.0, "b_max": 1.0, **window} if isinstance(window, dict) else {}
            if set(full) != set(WINDOW_KEYS) or not all(_number(full[k]) for k in WINDOW_KEYS) \
                    or not (full["a_min"] < full["a_max"] and full["b_min"] < full["b_max"]):
                problems.append(f"intensity_windows[\"{c}\"] must be numbers a_min < a_max (and b_min < b_max, "
                                f"default 0 and 1), got {window!r}")
    problems += [f"intensity_windows has key {k!r}, which is not an input channel index"
                 for k in windows if k not in {str(c) for c in range(len(schemes))}]
    return problems


@dataclass(frozen=True)
class Resampling:
    """How data and segmentations are resampled (nnU-Net: cubic data, linear labels, nearest along a coarse z)."""

    order_data: int = 3
    order_seg: int = 1
    order_z: int = 0
    separate_z_anisotropy_threshold: float = DEFAULT_ANISOTROPY_THRESHOLD


@dataclass(frozen=True)
class Configuration:
    """One planned configuration (3d_fullres, 3d_lowres): spacing, patch, shapes, kernels in transposed order."""

    name: str
    data_identifier: str
    spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    pool_op_kernel_sizes: tuple[tuple[int, ...], ...]
    conv_kernel_sizes: tuple[tuple[int, ...], ...]
    median_shape: tuple[float, ...]
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    resampling: Resampling
    num_classes: int
    num_input_channels: int
    network_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    next_stage: str | None = None
    intensity_windows: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, name: str, data: Mapping, source: str = "plans") -> "Configuration":
        """Validated configuration from its JSON; UnetrPPError listing every problem otherwise."""
        if not isinstance(data, Mapping):
            raise UnetrPPError(f"{source}: configuration {name!r} is not a mapping")
        problems = configuration_problems(data)
        if problems:
            raise problems_error(f"{source}: configuration {name!r} is not usable", problems)
        return cls(
            name=name, data_identifier=str(data["data_identifier"]),
            spacing=tuple(float(v) for v in data["spacing"]), patch_size=tuple(int(v) for v in data["patch_size"]),
            batch_size=int(data["batch_size"]),
            pool_op_kernel_sizes=tuple(tuple(int(v) for v in p) for p in data["pool_op_kernel_sizes"]),
            conv_kernel_sizes=tuple(tuple(int(v) for v in k) for k in data["conv_kernel_sizes"]),
            median_shape=tuple(float(v) for v in data["median_shape"]),
            normalization_schemes=tuple(data["normalization_schemes"]),
            use_mask_for_norm=tuple(bool(v) for v in data["use_mask_for_norm"]),
            resampling=Resampling(**(data.get("resampling") or {})), num_classes=int(data["num_classes"]),
            num_input_channels=int(data["num_input_channels"]),
            network_kwargs=copy.deepcopy(dict(data.get("network_kwargs") or {})), next_stage=data.get("next_stage"),
            intensity_windows={c: {"b_min": 0.0, "b_max": 1.0, **{k: float(v) for k, v in w.items()}}
                               for c, w in (data.get("intensity_windows") or {}).items()})

    def to_json(self) -> dict:
        """The configuration's JSON (the plans file layout)."""
        out = {
            "data_identifier": self.data_identifier, "spacing": list(self.spacing), "patch_size": list(self.patch_size),
            "batch_size": self.batch_size, "pool_op_kernel_sizes": [list(p) for p in self.pool_op_kernel_sizes],
            "conv_kernel_sizes": [list(k) for k in self.conv_kernel_sizes], "median_shape": list(self.median_shape),
            "normalization_schemes": list(self.normalization_schemes), "use_mask_for_norm": list(self.use_mask_for_norm),
            "resampling": dataclasses.asdict(self.resampling), "num_classes": self.num_classes,
            "num_input_channels": self.num_input_channels, "network_kwargs": copy.deepcopy(dict(self.network_kwargs)),
        }
        if self.next_stage is not None:
            out["next_stage"] = self.next_stage
        if self.intensity_windows:
            out["intensity_windows"] = {c: {k: w[k] for k in WINDOW_KEYS} for c, w in self.intensity_windows.items()}
        return out


@dataclass(frozen=True)
class Plans:
    """The plans of a task: dataset facts, transposition, intensity statistics and the configurations."""

    plans_identifier: str
    dataset_name: str
    channel_names: Mapping[str, str]
    labels: Mapping[str, str]
    regions: Mapping[str, list[int]] | None
    regions_class_order: tuple[int, ...] | None
    original_median_spacing: tuple[float, ...]
    original_median_shape: tuple[float, ...]
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]
    foreground_intensity_properties_per_channel: Mapping[str, Mapping[str, float]]
    preset: str | None
    overrides: Mapping[str, Any]
    preset_splits: Mapping[str, Any] | None
    configurations: Mapping[str, Configuration]
    source: str = field(default="plans", compare=False)

    @classmethod
    def from_json(cls, data: Any, source: str = "plans") -> "Plans":
        """Validated plans from the JSON of a plans file (source names the file in errors)."""
        if not isinstance(data, Mapping):
            raise UnetrPPError(f"{source}: not a plans file (expected a JSON object)")
        missing = [key for key in _REQUIRED_PLANS if key not in data]
        if missing:
            raise UnetrPPError(f"{source}: not a plans file; missing {', '.join(missing)}")
        configs = data["configurations"]
        if not isinstance(configs, Mapping) or not configs:
            raise UnetrPPError(f"{source}: the plans have no configurations")
        order = data.get("regions_class_order")
        if bool(data.get("regions")) != (order is not None):
            raise UnetrPPError(f"{source}: 'regions' and 'regions_class_order' must be given together")
        return cls(
            plans_identifier=str(data["plans_identifier"]), dataset_name=str(data["dataset_name"]),
            channel_names=dict(data.get("channel_names") or {}), labels=dict(data["labels"]),
            regions=copy.deepcopy(data.get("regions")), regions_class_order=None if order is None else tuple(order),
            original_median_spacing=tuple(data.get("original_median_spacing") or ()),
            original_median_shape=tuple(data.get("original_median_shape") or ()),
            transpose_forward=tuple(int(v) for v in data["transpose_forward"]),
            transpose_backward=tuple(int(v) for v in data["transpose_backward"]),
            foreground_intensity_properties_per_channel=copy.deepcopy(
                dict(data["foreground_intensity_properties_per_channel"])),
            preset=data.get("preset"), overrides=copy.deepcopy(dict(data.get("overrides") or {})),
            preset_splits=copy.deepcopy(data.get("preset_splits")),
            configurations={name: Configuration.from_json(name, cfg, source) for name, cfg in configs.items()},
            source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Plans":
        """Read and validate a plans file."""
        return cls.from_json(load_json(path), str(path))

    def to_json(self) -> dict:
        """The plans file's JSON (docs/architecture.md "Plans")."""
        order = None if self.regions_class_order is None else list(self.regions_class_order)
        return {
            "plans_identifier": self.plans_identifier, "dataset_name": self.dataset_name,
            "channel_names": dict(self.channel_names), "labels": dict(self.labels),
            "regions": copy.deepcopy(self.regions), "regions_class_order": order,
            "original_median_spacing": list(self.original_median_spacing),
            "original_median_shape": list(self.original_median_shape),
            "transpose_forward": list(self.transpose_forward), "transpose_backward": list(self.transpose_backward),
            "foreground_intensity_properties_per_channel": copy.deepcopy(
                dict(self.foreground_intensity_properties_per_channel)),
            "preset": self.preset, "overrides": copy.deepcopy(dict(self.overrides)),
            "preset_splits": copy.deepcopy(self.preset_splits),
            "configurations": {name: cfg.to_json() for name, cfg in self.configurations.items()},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the plans file atomically."""
        save_json(self.to_json(), path)

    def configuration(self, name: str) -> Configuration:
        """The configuration `name`; UnetrPPError listing the planned ones when it does not exist."""
        if name not in self.configurations:
            raise UnetrPPError(f"{self.source}: no configuration {name!r} in plans {self.plans_identifier} "
                               f"(available: {', '.join(self.configurations)})")
        return self.configurations[name]

    def with_configuration(self, config: Configuration) -> "Plans":
        """A copy with `config` replacing (or adding) the configuration of its name."""
        return dataclasses.replace(self, configurations={**self.configurations, config.name: config})

    def replace(self, **changes: Any) -> "Plans":
        """A copy with top-level `changes` (configurations given as Configuration objects)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_region_task(self) -> bool:
        """True when the network predicts overlapping regions (sigmoid outputs) instead of exclusive labels."""
        return bool(self.regions)

    @property
    def region_label_sets(self) -> list[list[int]] | None:
        """The label ids of each region in output-channel order, or None for a label task."""
        return [list(v) for v in self.regions.values()] if self.regions else None

    @property
    def foreground_classes(self) -> list[int]:
        """Label ids other than background (and the ids used by regions)."""
        ids = {int(k) for k in self.labels}
        for members in (self.regions or {}).values():
            ids.update(int(v) for v in members)
        return sorted(i for i in ids if i > 0)
