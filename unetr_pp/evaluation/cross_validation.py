"""Cross-validation report: every finished fold's `validation_raw/` against the raw task's labelsTr.

Per fold, pooled over all cases, and mean ± std over folds (per target, DSC and HD95), before and after
the largest-component postprocessing decided on the pooled cases (unetr_pp.evaluation.postprocessing_rule).
Writes `cv_summary.{json,csv,md}` and `postprocessing.json` into the trainer folder.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unetr_pp.evaluation.cv_report import cv_stage, write_cv_reports
from unetr_pp.evaluation.folders import DEFAULT_NUM_PROCESSES, evaluate_folders, match_cases
from unetr_pp.evaluation.metrics import check_options
from unetr_pp.evaluation.protocols import ALL_LABELS, resolve_protocol
from unetr_pp.io import load_dataset_json
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, preprocessed_folder, raw_data_folder, results_folder
from unetr_pp.inference.postprocessing import POSTPROCESSING_FILE
from unetr_pp.evaluation.postprocessing_rule import determine_postprocessing
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json, save_json

DEFAULT_FOLDS = ("0", "1", "2", "3", "4")
FINAL_CHECKPOINT = "model_final_checkpoint.model"
VALIDATION_FOLDER = "validation_raw"
SPLITS_FILE = "splits_final.json"


@dataclass(frozen=True)
class CVOptions:
    """Which trainer folder and folds; how to evaluate; whether to decide postprocessing."""

    task: str
    trainer: str
    folds: tuple[str, ...] = DEFAULT_FOLDS
    configuration: str = "3d_fullres"
    plans_identifier: str = DEFAULT_PLANS_IDENTIFIER
    protocol: str | None = None
    hd95_unit: str = "mm"
    empty: str = "nan"
    num_processes: int = DEFAULT_NUM_PROCESSES
    postprocessing: bool = True


def trainer_folder(options: CVOptions) -> Path:
    """`$RESULTS_FOLDER/unetr_pp/<configuration>/<task>/<trainer>__<plans_identifier>` (must exist)."""
    folder = results_folder() / options.configuration / options.task / f"{options.trainer}__{options.plans_identifier}"
    if not folder.is_dir():
        raise UnetrPPError(f"no trainer folder {folder}; check -t, -tr, -c and -p")
    return folder


def _labels_folder(task: str) -> Path:
    labels = raw_data_folder() / task / "labelsTr"
    if not labels.is_dir() or not (labels.parent / "dataset.json").is_file():
        raise UnetrPPError(f"{labels}: the raw task's labelsTr and dataset.json are needed to evaluate the folds")
    return labels


def _expected_cases(task: str) -> list[list[str]] | None:
    """Validation case ids per fold from the preprocessed task's splits_final.json (None when not available)."""
    try:
        path = preprocessed_folder() / task / SPLITS_FILE
    except UnetrPPError:
        return None
    if not path.is_file():
        return None
    try:
        return [list(split["val"]) for split in load_json(path)]
    except (KeyError, TypeError):
        raise UnetrPPError(f"{path}: expected a list of {{\"train\": [...], \"val\": [...]}}") from None


def fold_problem(folder: Path, fold: str, expected: list[list[str]] | None, ending: str) -> str | None:
    """Why fold `fold` cannot be used (missing, unfinished, cases missing from validation_raw), or None."""
    fold_dir = folder / f"fold_{fold}"
    if not fold_dir.is_dir():
        return f"missing: no {fold_dir}"
    for needed in (FINAL_CHECKPOINT, f"{VALIDATION_FOLDER}/summary.json"):
        if not (fold_dir / needed).is_file():
            return f"unfinished: no {fold_dir / needed}"
    if expected is not None and fold.isdigit() and int(fold) < len(expected):
        absent = [c for c in expected[int(fold)] if not (fold_dir / VALIDATION_FOLDER / f"{c}{ending}").is_file()]
        if absent:
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            return f"unfinished: {VALIDATION_FOLDER} lacks {len(absent)} validation case(s) of {SPLITS_FILE}: {shown}"
    return None


def _check_unique_cases(pairs_per_fold: dict[str, list]) -> None:
    seen: dict[str, str] = {}
    problems = []
    for fold, pairs in pairs_per_fold.items():
        for case, _, _ in pairs:
            if case in seen:
                problems.append(f"case {case} is in the validation predictions of fold {seen[case]} and fold {fold}")
            seen[case] = fold
    if problems:
        raise problems_error("the folds' validation cases overlap", problems)


def run_cross_validation(options: CVOptions) -> tuple[dict, list[Path]]:
    """Evaluate the folds, decide postprocessing, write the reports; returns (report, written paths)."""
    check_options(options.hd95_unit, options.empty)
    if len(set(options.folds)) != len(options.folds):
        raise UnetrPPError(f"--folds lists a fold twice: {' '.join(options.folds)}")
    folder = trainer_folder(options)
    labels = _labels_folder(options.task)
    ending = load_dataset_json(labels.parent).file_ending
    dataset_json = labels.parent / "dataset.json" if options.protocol in (None, ALL_LABELS) else None
    protocol = resolve_protocol(options.protocol, None, dataset_json, labels)
    expected = _expected_cases(options.task)
    skipped = {f: why for f in options.folds if (why := fold_problem(folder, f, expected, ending))}
    used = [f for f in options.folds if f not in skipped]
    if not used:
        raise problems_error(f"{folder}: no finished fold among {' '.join(options.folds)}",
                             [f"fold {f}: {why}" for f, why in skipped.items()])
    if skipped:
        print(f"warning: fold(s) left out of the cross-validation report: "
              f"{'; '.join(f'fold {f} {why}' for f, why in skipped.items())}", file=sys.stderr)
    pairs = {f: match_cases(labels, folder / f"fold_{f}" / VALIDATION_FOLDER, only_predicted=True) for f in used}
    _check_unique_cases(pairs)

    def evaluate(steps: Sequence[tuple[int, ...]]) -> dict[str, dict]:
        return {f: evaluate_folders(labels, folder / f"fold_{f}" / VALIDATION_FOLDER, protocol=options.protocol,
                                    hd95_unit=options.hd95_unit, empty=options.empty,
                                    num_processes=options.num_processes, dataset_json=dataset_json,
                                    only_predicted=True, postprocessing=steps) for f in used}

    before = evaluate(())
    report = {
        "task": options.task, "trainer": options.trainer, "configuration": options.configuration,
        "plans_identifier": options.plans_identifier, "trainer_folder": str(folder), "protocol": protocol.name,
        "hd95_unit": options.hd95_unit, "empty_convention": options.empty,
        "folds_requested": list(options.folds), "folds_used": used, "folds_skipped": skipped,
        "targets": [{"name": t.name, "ids": list(t.ids)} for t in protocol.targets],
        "before_postprocessing": cv_stage(before, protocol.targets), "postprocessing": None,
        "after_postprocessing": None,
    }
    paths = []
    if options.postprocessing:
        all_pairs = [pair for f in used for pair in pairs[f]]
        decision = determine_postprocessing(all_pairs, protocol.targets, options.num_processes)
        steps = [tuple(step["ids"]) for step in decision["steps"]]
        after = cv_stage(evaluate(steps), protocol.targets) if steps else report["before_postprocessing"]
        report["after_postprocessing"] = after
        record = {**{k: report[k] for k in ("task", "trainer", "configuration", "plans_identifier", "protocol")},
                  "folds": used, **decision,
                  "cv_before": report["before_postprocessing"]["pooled"]["foreground_mean"],
                  "cv_after": after["pooled"]["foreground_mean"]}
        save_json(record, folder / POSTPROCESSING_FILE)
        paths.append(folder / POSTPROCESSING_FILE)
        report["postprocessing"] = {"file": str(folder / POSTPROCESSING_FILE), "steps": decision["steps"],
                                    "foreground": decision["foreground"], "per_target": decision["per_target"]}
    return report, write_cv_reports(report, protocol.targets, folder) + paths
