"""Cross-validation numbers (per fold, pooled, mean ± std over folds) and cv_summary.json / .csv / .md."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from unetr_pp.evaluation.protocols import Target
from unetr_pp.evaluation.report import EMPTY_DESCRIPTION, case_means
from unetr_pp.utilities.files import atomic_path, save_json

CV_FILES = ("cv_summary.json", "cv_summary.csv", "cv_summary.md")
STAGES = (("before_postprocessing", "before postprocessing"), ("after_postprocessing", "after postprocessing"))


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    defined = [v for v in values if v is not None]
    return (float(np.mean(defined)), float(np.std(defined))) if defined else (None, None)


def _over_folds(per_fold: dict[str, dict], targets: Sequence[Target]) -> dict:
    """Mean and population std over folds of each fold's target means and foreground means."""
    mean = {}
    for t in targets:
        dice, dice_std = _mean_std([fold["mean"][t.name]["Dice"] for fold in per_fold.values()])
        hd95, hd95_std = _mean_std([fold["mean"][t.name]["HD95"] for fold in per_fold.values()])
        mean[t.name] = {"Dice": dice, "Dice_std": dice_std, "HD95": hd95, "HD95_std": hd95_std}
    dice, dice_std = _mean_std([fold["foreground_mean"]["Dice"] for fold in per_fold.values()])
    hd95, hd95_std = _mean_std([fold["foreground_mean"]["HD95"] for fold in per_fold.values()])
    return {"num_folds": len(per_fold), "mean": mean,
            "foreground_mean": {"Dice": dice, "Dice_std": dice_std, "HD95": hd95, "HD95_std": hd95_std}}


def cv_stage(summaries: dict[str, dict], targets: Sequence[Target]) -> dict:
    """{per_fold, pooled, fold_mean} from each fold's evaluation summary (unetr_pp.evaluation.report format)."""
    per_fold = {fold: {"num_cases": len(s["metric_per_case"]), "cases": [c["case"] for c in s["metric_per_case"]],
                       "mean": s["mean"], "foreground_mean": s["foreground_mean"]}
                for fold, s in summaries.items()}
    cases = [case for s in summaries.values() for case in s["metric_per_case"]]
    mean, foreground = case_means(cases, targets)
    return {"per_fold": per_fold, "pooled": {"num_cases": len(cases), "mean": mean, "foreground_mean": foreground},
            "fold_mean": _over_folds(per_fold, targets)}


def _fmt(value: float | None, scale: float = 1.0, std: float | None = None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value * scale:.{digits}f}" + ("" if std is None else f" ± {std * scale:.{digits}f}")


def _rows(stage: dict) -> list[tuple[str, dict, dict, bool]]:
    rows = [(f"fold {f} ({s['num_cases']} cases)", s["mean"], s["foreground_mean"], False)
            for f, s in stage["per_fold"].items()]
    rows.append((f"pooled ({stage['pooled']['num_cases']} cases)", stage["pooled"]["mean"],
                 stage["pooled"]["foreground_mean"], False))
    rows.append((f"mean ± std over {stage['fold_mean']['num_folds']} folds", stage["fold_mean"]["mean"],
                 stage["fold_mean"]["foreground_mean"], True))
    return rows


def _stage_tables(stage: dict, title: str, targets: Sequence[Target], unit: str) -> list[str]:
    headers = [t.header for t in targets]
    lines = [f"## DSC (%) {title}", "",
             f"| | {' | '.join(headers)} | mean DSC (%) ↑ | mean HD95 ({unit}) ↓ |",
             "|---" + "|---:" * (len(headers) + 2) + "|"]
    for name, mean, fg, with_std in _rows(stage):
        cells = [_fmt(mean[t.name]["Dice"], 100.0, mean[t.name]["Dice_std"] if with_std else None) for t in targets]
        lines.append(f"| {name} | {' | '.join(cells)} | "
                     f"{_fmt(fg['Dice'], 100.0, fg.get('Dice_std') if with_std else None)} | "
                     f"{_fmt(fg['HD95'], 1.0, fg.get('HD95_std') if with_std else None)} |")
    lines += ["", f"## HD95 ({unit}) {title}", "", f"| | {' | '.join(headers)} |",
              "|---" + "|---:" * len(headers) + "|"]
    for name, mean, _, with_std in _rows(stage):
        cells = [_fmt(mean[t.name]["HD95"], 1.0, mean[t.name]["HD95_std"] if with_std else None) for t in targets]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines + [""]


def _postprocessing_lines(report: dict) -> list[str]:
    post = report["postprocessing"]
    if post is None:
        return ["- postprocessing: not determined (--no_postprocessing)"]
    fg = post["foreground"]
    lines = [f"- postprocessing ({post['file']}): whole foreground {'applied' if fg['applied'] else 'not applied'} "
             f"(mean DSC {_fmt(fg['dice_before'], 100.0, digits=3)} -> {_fmt(fg['dice_after'], 100.0, digits=3)}"
             + (f"; worse: {', '.join(fg['targets_worse'])}" if fg["targets_worse"] else "") + ")"]
    for entry in post["per_target"]:
        lines.append(f"  - {entry['name']} {entry['ids']}: {'applied' if entry['applied'] else 'not applied'} "
                     f"(DSC {_fmt(entry['dice_before'], 100.0, digits=3)} -> "
                     f"{_fmt(entry['dice_after'], 100.0, digits=3)})")
    if not post["steps"]:
        lines.append("  - no step improved the mean Dice: predictions are left as they are")
    return lines


def cv_markdown(report: dict, targets: Sequence[Target]) -> str:
    """cv_summary.md: DSC and HD95 tables (folds, pooled, mean ± std) before and after postprocessing."""
    unit = report["hd95_unit"]
    before = report["before_postprocessing"]
    lines = [f"# Cross-validation: {report['task']}, {report['trainer']}, {report['configuration']} "
             f"({report['protocol']}; folds {' '.join(report['folds_used'])}, {before['pooled']['num_cases']} cases)",
             ""]
    lines += _stage_tables(before, "before postprocessing", targets, unit)
    after = report["after_postprocessing"]
    if report["postprocessing"] and report["postprocessing"]["steps"]:
        lines += _stage_tables(after, "after postprocessing", targets, unit)
    lines += _postprocessing_lines(report)
    for fold, why in report["folds_skipped"].items():
        lines.append(f"- fold {fold} left out: {why}")
    lines += [
        "- pooled: mean over all cases of the folds used; mean ± std over folds: of each fold's mean "
        "(population std); mean DSC/HD95: mean of the per-target means",
        f"- HD95 unit: {unit}; empty masks ({report['empty_convention']}): "
        f"{EMPTY_DESCRIPTION[report['empty_convention']]}",
        f"- columns: {'; '.join(f'{t.header} = {t.name} {list(t.ids)}' for t in targets)}",
    ]
    return "\n".join(lines) + "\n"


def _csv_rows(report: dict, targets: Sequence[Target]):
    for stage_key, stage_name in STAGES:
        stage = report[stage_key]
        if stage is None:
            continue
        scopes = [(f"fold_{f}", s, s["num_cases"]) for f, s in stage["per_fold"].items()]
        scopes += [("pooled", stage["pooled"], stage["pooled"]["num_cases"]),
                   ("fold_mean", stage["fold_mean"], stage["fold_mean"]["num_folds"])]
        for scope, values, count in scopes:
            entries = [(t.name, values["mean"][t.name]) for t in targets]
            for name, m in entries + [("foreground_mean", values["foreground_mean"])]:
                yield [stage_name.replace(" ", "_"), scope, count, name,
                       *("" if m.get(k) is None else m[k] for k in ("Dice", "Dice_std", "HD95", "HD95_std"))]


def write_cv_reports(report: dict, targets: Sequence[Target], folder: str | Path) -> list[Path]:
    """Write cv_summary.json, .csv (stage, scope, n, target, Dice, Dice_std, HD95, HD95_std) and .md atomically."""
    paths = [Path(folder) / name for name in CV_FILES]
    save_json(report, paths[0])
    with atomic_path(paths[1], suffix=".tmp") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stage", "scope", "n", "target", "Dice", "Dice_std", "HD95", "HD95_std"])
        writer.writerows(_csv_rows(report, targets))
    with atomic_path(paths[2], suffix=".tmp") as tmp:
        tmp.write_text(cv_markdown(report, targets))
    return paths
