"""Evaluation summary: per-target mean/std over cases and the summary.json / .csv / .md files.

The summary dict holds None where a value is undefined (NaN), so it equals what summary.json holds.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from unetr_pp.evaluation.metrics import METRIC_KEYS
from unetr_pp.evaluation.protocols import Target
from unetr_pp.utilities.files import atomic_path, save_json

HD95_DEFINITION = (
    "medpy 0.5.2 hd95: 95th percentile (numpy, linear) of the surface distances of both directions "
    "pooled; surface = mask XOR erosion by the 6-neighbour cross, outside the image = background"
)
EMPTY_DESCRIPTION = {
    "nan": "both empty: Dice and HD95 undefined (null, not averaged); one empty: Dice 0 (averaged), "
    "HD95 undefined (not averaged), counted in n_one_empty",
    "unetrpp": "as the UNETR++ paper: both empty: Dice 1, HD95 0; one empty: Dice 0, HD95 0; all averaged",
}
SUMMARY_FILES = ("summary.json", "summary.csv", "summary.md")


def _clean(value: float | int) -> float | int | None:
    """NaN -> None; numpy scalars -> Python numbers."""
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return int(value)


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    defined = [v for v in values if v is not None]
    if not defined:
        return None, None
    return float(np.mean(defined)), float(np.std(defined))


def _target_mean(cases: list[dict], name: str) -> dict:
    entries = [case["metrics"][name] for case in cases]
    dice, dice_std = _mean_std([e["Dice"] for e in entries])
    hd95, hd95_std = _mean_std([e["HD95"] for e in entries])
    one_empty = sum(1 for e in entries if (e["n_ref"] == 0) != (e["n_pred"] == 0))
    both_empty = sum(1 for e in entries if e["n_ref"] == 0 and e["n_pred"] == 0)
    return {"Dice": dice, "HD95": hd95, "Dice_std": dice_std, "HD95_std": hd95_std,
            "n_one_empty": one_empty, "n_both_empty": both_empty}


def case_means(per_case: Sequence[dict], targets: Sequence[Target]) -> tuple[dict, dict]:
    """(mean {target: {Dice, HD95, *_std, n_one_empty, n_both_empty}}, foreground_mean {Dice, HD95}).

    `per_case`: entries whose metric values are already cleaned (None where undefined).
    """
    mean = {t.name: _target_mean(list(per_case), t.name) for t in targets}
    foreground = {}
    for key in ("Dice", "HD95"):
        defined = [m[key] for m in mean.values() if m[key] is not None]
        foreground[key] = float(np.mean(defined)) if defined else None
    return mean, foreground


def build_summary(
    cases: Sequence[dict], targets: Sequence[Target], protocol: str, hd95_unit: str, empty: str
) -> dict:
    """Summary dict from per-case entries {case, reference_file, prediction_file, metrics {name: {...}}}."""
    per_case = [
        {**case, "metrics": {t.name: {k: _clean(case["metrics"][t.name][k]) for k in METRIC_KEYS} for t in targets}}
        for case in cases
    ]
    mean, foreground = case_means(per_case, targets)
    return {
        "hd95_unit": hd95_unit,
        "empty_convention": empty,
        "protocol": protocol,
        "hd95_definition": HD95_DEFINITION,
        "metric_per_case": per_case,
        "mean": mean,
        "foreground_mean": foreground,
    }


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.2f}"


def _fmt_pm(mean: float | None, std: float | None, scale: float = 1.0) -> str:
    return "–" if mean is None else f"{mean * scale:.2f} ± {std * scale:.2f}"


def plots_section(plots: dict) -> list[str]:
    """summary.md lines about the pictures: the metric plot shown, the case overlays linked."""
    lines = ["", "## Plots", ""]
    if plots["metrics"]:
        lines += [f"![DSC and HD95 per organ over cases]({plots['metrics']})", ""]
    slices = " and ".join({"disagreement": "the largest disagreement", "organs": "each organ's centre"}[m]
                          for m in plots["slices"])
    overlays = ", ".join(f"[{Path(f).stem}]({f})" for f in plots["overlays"]) or "none drawn"
    lines.append(f"- overlays (reference solid, prediction dashed; axial, coronal and sagittal slices through "
                 f"{slices}): {overlays}")
    if plots["note"]:
        lines.append(f"- {plots['note']}")
    return lines


def markdown_table(summary: dict, targets: Sequence[Target], plots: dict | None = None) -> str:
    """summary.md: organ columns (mean ± std over cases), mean DSC and mean HD95, definitions (and the plots)."""
    unit = summary["hd95_unit"]
    mean, fg = summary["mean"], summary["foreground_mean"]
    headers = [t.header for t in targets]
    dice = [_fmt_pm(mean[t.name]["Dice"], mean[t.name]["Dice_std"], 100.0) for t in targets]
    hd95 = [_fmt_pm(mean[t.name]["HD95"], mean[t.name]["HD95_std"]) for t in targets]
    lines = [
        f"# Evaluation ({summary['protocol']}, {len(summary['metric_per_case'])} cases)",
        "",
        f"| DSC (%) | {' | '.join(headers)} | mean HD95 ({unit}) ↓ | mean DSC (%) ↑ |",
        "|---" + "|---:" * (len(headers) + 2) + "|",
        f"| mean ± std | {' | '.join(dice)} | {_fmt(fg['HD95'])} | {_fmt(fg['Dice'], 100.0)} |",
        "",
        f"| HD95 ({unit}) | {' | '.join(headers)} |",
        "|---" + "|---:" * len(headers) + "|",
        f"| mean ± std | {' | '.join(hd95)} |",
        "",
        f"- HD95 unit: {unit} ({'image spacing' if unit == 'mm' else 'voxels of the array grid, spacing ignored'})",
        f"- HD95 definition: {summary['hd95_definition']}",
        f"- empty masks ({summary['empty_convention']}): {EMPTY_DESCRIPTION[summary['empty_convention']]}",
        "- std: population standard deviation over cases; mean DSC/HD95: mean of the per-organ means",
    ]
    counts = [f"{t.header} {mean[t.name]['n_one_empty']}" for t in targets if mean[t.name]["n_one_empty"]]
    if counts:
        lines.append(f"- cases with exactly one empty mask: {', '.join(counts)}")
    short = [f"{t.header} = {t.name} {list(t.ids)}" for t in targets]
    lines.append(f"- columns: {'; '.join(short)}")
    if plots is not None:
        lines += plots_section(plots)
    return "\n".join(lines) + "\n"


def _write_csv(summary: dict, targets: Sequence[Target], path: Path) -> None:
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case", "reference_file", "prediction_file", "label", "label_ids", *METRIC_KEYS])
        for case in summary["metric_per_case"]:
            for t in targets:
                values = case["metrics"][t.name]
                writer.writerow(
                    [case["case"], case["reference_file"], case["prediction_file"], t.name,
                     ";".join(map(str, t.ids)), *("" if values[k] is None else values[k] for k in METRIC_KEYS)]
                )


def write_reports(summary: dict, targets: Sequence[Target], out_dir: str | Path,
                  plots: dict | None = None) -> list[Path]:
    """Write summary.json, summary.csv and summary.md (each atomically) into `out_dir`; their paths.

    `plots` ({"metrics": path or None, "overlays": [paths], "slices": [modes], "note": str}; paths relative to
    `out_dir`) adds a section to summary.md.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / name for name in SUMMARY_FILES]
    save_json(summary, paths[0])
    _write_csv(summary, targets, paths[1])
    with atomic_path(paths[2], suffix=".tmp") as tmp:
        tmp.write_text(markdown_table(summary, targets, plots))
    return paths
