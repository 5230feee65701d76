"""plan_and_preprocess: (integrity) -> crop + fingerprint -> plans (+ preset/overrides, checked by the networks)
-> preprocess. The orchestration above the preprocessing, planning and network stages.

A new task's preprocessed folder is built as `$unetr_pp_preprocessed/.<Task>.partial` and renamed to
`<Task>` when everything succeeded; a failure caused by the input removes it, an interruption keeps it
so the next run resumes. Cropped cases are cached in `$unetr_pp_raw_data_base/unetr_pp_cropped_data/<Task>`.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from unetr_pp import paths
from unetr_pp.dataset.integrity import verify_dataset_integrity
from unetr_pp.io import DatasetInfo, load_dataset_json, read_image_shape
from unetr_pp.io.plans import Configuration, Plans
from unetr_pp.networks.registry import network_problems
from unetr_pp.planning.planner import plan_experiment
from unetr_pp.planning.presets import CONFIG, load_preset, merge_preset_and_overrides, parse_override
from unetr_pp.preprocessing.fingerprint import extract_fingerprint
from unetr_pp.preprocessing.preprocessor import preprocess_configuration
from unetr_pp.preprocessing.resampling import compute_new_shape
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import check_writable_dir, save_json
from unetr_pp.utilities.parallel import default_workers, workers_for_memory

DEFAULT_MAX_WORKERS = 8
# peak RSS of one preprocessing worker: at most this many float32 volumes of its case (docs/benchmarks.md),
# plus the interpreter and libraries
PEAK_VOLUMES = 3
WORKER_ALLOWANCE = 400 * 2**20


@dataclass
class PlanAndPreprocessOptions:
    """What `unetr_pp_plan_and_preprocess` was asked to do."""

    task: str
    verify_integrity: bool = False
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)
    configurations: list[str] | None = None
    plans_identifier: str = paths.DEFAULT_PLANS_IDENTIFIER
    processes_lowres: int | None = None  # None: min(8, CPUs), lowered to fit the available memory
    processes_fullres: int | None = None
    preprocess: bool = True


def _default_workers(requested: int | None, voxels: int) -> int:
    """`requested`, or min(8, CPUs) lowered so that workers handling `voxels` float32 voxels fit in memory."""
    if requested is not None:
        return max(1, requested)
    return workers_for_memory(default_workers(DEFAULT_MAX_WORKERS), PEAK_VOLUMES * 4 * voxels + WORKER_ALLOWANCE)


def _raw_case_voxels(info: DatasetInfo) -> int:
    """Voxels of the largest training case over all channels, from the image headers (0 if none is readable)."""
    largest = 0
    for case in info.training_cases:
        shape = read_image_shape(case.images[0]) if Path(case.images[0]).is_file() else None
        largest = max(largest, math.prod(shape) * len(case.images) if shape else 0)
    return largest


def _preprocessed_case_voxels(fingerprint: dict, plans: Plans, config: Configuration, num_channels: int) -> int:
    """Voxels of the largest case (cropped or resampled, whichever is larger) over all channels."""
    forward = plans.transpose_forward
    largest = 0
    for shape, spacing in zip(fingerprint["shapes_after_crop"], fingerprint["spacings"]):
        resampled = compute_new_shape([shape[a] for a in forward], [spacing[a] for a in forward], config.spacing)
        largest = max(largest, max(math.prod(shape), math.prod(resampled)) * num_channels)
    return largest


def _load_task(task_dir: Path, verify: bool, requested: int | None) -> tuple[DatasetInfo, int]:
    """(task, worker count for the per-case stages before planning)."""
    try:
        voxels = _raw_case_voxels(load_dataset_json(task_dir))
    except UnetrPPError:  # reported below (or by the integrity check with every other problem)
        voxels = 0
    processes = _default_workers(requested, voxels)
    if verify:
        return verify_dataset_integrity(task_dir, processes), processes
    info = load_dataset_json(task_dir)
    if not info.training_cases:
        raise UnetrPPError(f"{task_dir / 'imagesTr'}: no training cases found (empty images folder?)")
    return info, processes


def apply_preset_and_overrides(plans: Plans, preset: str | None, overrides: Sequence[str]) -> Plans:
    """The preset and overrides applied to 3d_fullres (planning's checks), then checked by each network named
    in its network_kwargs; every problem is listed in one error."""
    applied = merge_preset_and_overrides(plans, preset, overrides)
    problems = [f"{CONFIG}: {p}" for p in network_problems(applied.configuration(CONFIG))]
    if problems:
        what = f"preset {preset!r} / overrides" if preset else "overrides"
        raise problems_error(f"invalid plans after applying the {what}", problems)
    return applied


def _summary(plans: Plans) -> str:
    lines = [f"plans {plans.plans_identifier} for {plans.dataset_name}: transpose {list(plans.transpose_forward)}"]
    for name, cfg in plans.configurations.items():
        spacing = [round(s, 3) for s in cfg.spacing]
        lines.append(f"  {name}: spacing {spacing}, patch {list(cfg.patch_size)}, batch {cfg.batch_size}, "
                     f"{len(cfg.pool_op_kernel_sizes)} poolings, normalization {list(cfg.normalization_schemes)}")
    return "\n".join(lines)


def plan_and_preprocess(options: PlanAndPreprocessOptions) -> Path:
    """Run the whole stage for one task; returns the preprocessed task folder."""
    if options.preset:
        load_preset(options.preset)
    for text in options.overrides:
        parse_override(text)
    raw_folder, pre_base = paths.raw_data_folder(), paths.preprocessed_folder()
    name = paths.resolve_task(options.task, [raw_folder])
    task_dir = raw_folder / name
    if not task_dir.is_dir():
        raise UnetrPPError(f"{task_dir}: raw task folder not found")
    info, processes = _load_task(task_dir, options.verify_integrity, options.processes_fullres)
    check_writable_dir(pre_base)
    cropped_folder = check_writable_dir(paths.cropped_data_folder() / name)
    final = pre_base / name
    work = final if final.is_dir() else pre_base / f".{name}.partial"
    try:
        work.mkdir(exist_ok=True)
        _run(options, info, cropped_folder, work, processes)
    except UnetrPPError:
        if work != final:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if work != final:
        os.replace(work, final)
    return final


def _run(options: PlanAndPreprocessOptions, info: DatasetInfo, cropped_folder: Path, work: Path,
         fingerprint_processes: int) -> None:
    fingerprint = extract_fingerprint(info, cropped_folder, fingerprint_processes)
    save_json(fingerprint, work / "dataset_fingerprint.json")
    save_json(info.raw, work / "dataset.json")
    plans = plan_experiment(fingerprint, info, options.plans_identifier)
    plans = apply_preset_and_overrides(plans, options.preset, options.overrides)
    plans.save(work / f"{options.plans_identifier}.json")
    print(_summary(plans))
    if not options.preprocess:
        return
    wanted = options.configurations or list(plans.configurations)
    cases = sorted(info.training_cases, key=lambda c: c.case_id)
    for configuration in wanted:
        if configuration not in plans.configurations:
            print(f"{configuration}: not planned for this dataset (3d_lowres is only made when the images are "
                  f"much larger than the 3d_fullres patch); skipped")
            continue
        requested = options.processes_lowres if configuration == "3d_lowres" else options.processes_fullres
        config = plans.configuration(configuration)
        processes = _default_workers(requested, _preprocessed_case_voxels(fingerprint, plans, config, info.num_channels))
        computed = preprocess_configuration(cases, cropped_folder, work, plans, configuration, processes)
        print(f"{configuration}: {computed} case(s) preprocessed, {len(cases) - computed} already done")
