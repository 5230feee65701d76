"""Predict a folder of raw cases: preprocess (worker pool) -> sliding window (folds, TTA) -> export (worker pool).

`predict_preprocessed_case` and `export_case` are the two steps the trainer's final validation reuses on
cases that are already preprocessed.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Executor, Future
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from unetr_pp.inference.export import export_prediction
from unetr_pp.inference.inputs import InputCase, list_input_cases
from unetr_pp.inference.models import TrainedModel
from unetr_pp.inference.label_map import LabelMap
from unetr_pp.inference.postprocessing import Step
from unetr_pp.inference.sliding_window import Network, SlidingWindowSettings, predict_probabilities
from unetr_pp.io.plans import Plans
from unetr_pp.preprocessing.preprocessed_data import preprocess_case_for_inference
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import check_writable_dir
from unetr_pp.utilities.parallel import spawn_pool


@dataclass(frozen=True)
class PredictionOptions:
    """Sliding-window and pipeline settings; `mirror_axes=()` disables test-time mirroring.

    `postprocessing`: largest-component steps (label id tuples) applied to the labels before writing;
    `label_map`: then maps the labels onto another dataset's ids (external testing).
    """

    step_size: float = 0.5
    sw_batch_size: int = 4
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    accumulate: str = "auto"
    save_probabilities: bool = False
    overwrite: bool = False
    num_processes_preprocessing: int = 2
    num_processes_export: int = 2
    postprocessing: tuple[Step, ...] = ()
    label_map: LabelMap | None = None

    def __post_init__(self) -> None:
        SlidingWindowSettings((1, 1, 1), self.step_size, self.sw_batch_size, tuple(self.mirror_axes), self.accumulate)
        if self.num_processes_preprocessing < 0 or self.num_processes_export < 0:
            raise UnetrPPError("the numbers of preprocessing and export processes must be 0 or more")


@dataclass
class FolderReport:
    """What `predict_folder` did: case ids written, skipped (output existed) and failed (id -> reason)."""

    written: list[str]
    skipped: list[str]
    failed: dict[str, str]


def predict_preprocessed_case(networks: Sequence[Network], data: np.ndarray, plans: Plans, configuration: str,
                              options: PredictionOptions = PredictionOptions(),
                              device: torch.device | str = "cpu") -> np.ndarray:
    """Preprocessed (C, z, y, x) -> ensemble probabilities (K, z, y, x) float32 with the plans' patch size."""
    settings = SlidingWindowSettings(
        patch_size=plans.configuration(configuration).patch_size,
        step_size=options.step_size, sw_batch_size=options.sw_batch_size,
        mirror_axes=tuple(options.mirror_axes), accumulate=options.accumulate,
    )
    return predict_probabilities(networks, data, settings, device=device, regions=plans.is_region_task)


def export_case(probabilities: np.ndarray, properties: dict, plans: Plans, configuration: str,
                output_file: str | os.PathLike, save_probabilities: bool = False,
                postprocessing: Sequence[Step] = (), label_map: LabelMap | None = None) -> None:
    """Write (K, z, y, x) probabilities as labels in the case's original geometry using the plans' settings."""
    threshold = plans.configuration(configuration).resampling.separate_z_anisotropy_threshold
    export_prediction(probabilities, properties, output_file, plans.regions_class_order, save_probabilities, threshold,
                      postprocessing, label_map)


def preprocess_case(case_id: str, images: Sequence[Path], plans: Plans, configuration: str) -> tuple[np.ndarray, dict]:
    """Raw channel files -> (preprocessed (C, z, y, x) float32, per-case properties with `case_id`)."""
    data, properties = preprocess_case_for_inference([str(p) for p in images], plans, configuration)
    return data, {**properties, "case_id": case_id}


def _reason(err: BaseException) -> str:
    return str(err) if isinstance(err, UnetrPPError) else f"{type(err).__name__}: {err}"


def _pool(workers: int, stack: ExitStack) -> Executor | None:
    return stack.enter_context(spawn_pool(workers)) if workers > 0 else None


Preprocessed = tuple[np.ndarray, dict]


def _preprocessed(preprocess: Callable, cases: list[InputCase], plans: Plans, configuration: str,
                  pool: Executor | None, workers: int) -> Iterator[tuple[InputCase, Preprocessed | BaseException]]:
    """Yield (case, `preprocess(...)` or its error) in order, preprocessing up to `workers` + 1 cases ahead."""
    if pool is None:
        for case in cases:
            try:
                yield case, preprocess(case.case_id, case.images, plans, configuration)
            except Exception as err:  # one bad case must not stop the others
                yield case, err
        return
    ahead = workers + 1
    queue: deque[tuple[InputCase, Future]] = deque()
    remaining = iter(cases)
    for case in remaining:
        queue.append((case, pool.submit(preprocess, case.case_id, case.images, plans, configuration)))
        if len(queue) >= ahead:
            break
    while queue:
        case, future = queue.popleft()
        nxt = next(remaining, None)
        if nxt is not None:
            queue.append((nxt, pool.submit(preprocess, nxt.case_id, nxt.images, plans, configuration)))
        try:
            yield case, future.result()
        except Exception as err:
            yield case, err


def predict_folder(input_folder: str | os.PathLike, output_folder: str | os.PathLike, model: TrainedModel,
                   options: PredictionOptions = PredictionOptions(),
                   device: torch.device | str = "cpu") -> FolderReport:
    """Predict every case of `input_folder` into `output_folder/<case_id><ending>`; failures go on the report."""
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    if output_folder.resolve() == input_folder.resolve():
        raise UnetrPPError(f"{output_folder}: the output folder is the input folder; choose another -o "
                           "(inputs are never overwritten)")
    cases = list_input_cases(input_folder, model.config.num_input_channels)
    check_writable_dir(output_folder)
    outputs = {c.case_id: output_folder / f"{c.case_id}{c.ending}" for c in cases}
    skipped = [c.case_id for c in cases if not options.overwrite and outputs[c.case_id].exists()]
    todo = [c for c in cases if c.case_id not in skipped]
    failed = {c.case_id: c.problem for c in todo if c.problem}
    written: list[str] = []
    exports: deque[tuple[str, Future | None]] = deque()

    def finish_oldest() -> None:
        case_id, future = exports.popleft()
        try:
            if future is not None:
                future.result()
            written.append(case_id)
        except Exception as err:
            failed[case_id] = _reason(err)

    with ExitStack() as stack:
        pre_pool = _pool(options.num_processes_preprocessing, stack)
        export_pool = _pool(options.num_processes_export, stack)
        runnable = [c for c in todo if not c.problem]
        stream = _preprocessed(preprocess_case, runnable, model.plans, model.configuration, pre_pool,
                               options.num_processes_preprocessing)
        for case, result in tqdm(stream, total=len(runnable), desc="predicting", unit="case"):
            if isinstance(result, BaseException):
                failed[case.case_id] = _reason(result)
                continue
            data, properties = result
            try:
                probs = predict_preprocessed_case(model.networks, data, model.plans, model.configuration, options,
                                                  device)
                args = (probs, properties, model.plans, model.configuration, outputs[case.case_id],
                        options.save_probabilities, options.postprocessing, options.label_map)
                if export_pool is None:
                    export_case(*args)
                    exports.append((case.case_id, None))
                else:
                    exports.append((case.case_id, export_pool.submit(export_case, *args)))
            except Exception as err:
                failed[case.case_id] = _reason(err)
            while len(exports) > 2 * max(options.num_processes_export, 1):
                finish_oldest()
        while exports:
            finish_oldest()
    return FolderReport(sorted(written), skipped, dict(sorted(failed.items())))
