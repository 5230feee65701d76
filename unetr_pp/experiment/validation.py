"""Final validation of a fold: predict its validation cases, export them in the original geometry to
`validation_raw/`, evaluate against the raw task's labelsTr -> summary.{json,csv,md}."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from unetr_pp.evaluation.folders import evaluate_folders
from unetr_pp.inference.predictor import PredictionOptions, export_case, predict_preprocessed_case
from unetr_pp.io import load_dataset_json
from unetr_pp.io.plans import Plans
from unetr_pp.paths import raw_data_folder
from unetr_pp.preprocessing.preprocessed_data import load_case
from unetr_pp.utilities.errors import UnetrPPError

VALIDATION_FOLDER = "validation_raw"


def raw_labels_folder(task: str) -> Path:
    """`$unetr_pp_raw_data_base/unetr_pp_raw_data/<task>/labelsTr` (must exist, with dataset.json beside it)."""
    task_dir = raw_data_folder() / task
    labels = task_dir / "labelsTr"
    if not labels.is_dir() or not (task_dir / "dataset.json").is_file():
        raise UnetrPPError(f"{labels}: the raw task's labelsTr (and {task_dir / 'dataset.json'}) are needed to "
                           "evaluate the validation predictions; set unetr_pp_raw_data_base to the folder holding "
                           f"unetr_pp_raw_data/{task}")
    return labels


def validate_fold(network: nn.Module, plans: Plans, configuration: str, data_folder: Path, val_ids: Sequence[str],
                  task: str, output_folder: Path, device: torch.device, mirror: bool,
                  log: Callable[..., None]) -> dict:
    """Predict + export + evaluate `val_ids`; the network is used in eval mode (deep supervision off).

    Returns the evaluator's summary dict (also written to `<output_folder>/validation_raw/summary.*`).
    """
    labels = raw_labels_folder(task)
    ending = load_dataset_json(labels.parent).file_ending
    out = output_folder / VALIDATION_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"*{ending}"):
        stale.unlink()
    options = PredictionOptions(mirror_axes=(0, 1, 2) if mirror else ())
    was_training = network.training
    network.eval()
    try:
        for case_id in val_ids:
            case = load_case(data_folder, case_id, mmap=True)
            data = np.array(case.data, dtype=np.float32)
            probabilities = predict_preprocessed_case([network], data, plans, configuration, options, device)
            export_case(probabilities, {**case.properties, "case_id": case_id}, plans, configuration,
                        out / f"{case_id}{ending}")
            log(f"validation: predicted {case_id}")
    finally:
        network.train(was_training)
    summary = evaluate_folders(labels, out, protocol=None, dataset_json=labels.parent / "dataset.json",
                               out_dir=out, num_processes=1, only_predicted=True)
    log("validation summary (" + str(out / "summary.json") + "):\n" + (out / "summary.md").read_text())
    return summary
