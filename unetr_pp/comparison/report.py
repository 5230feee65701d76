"""The comparison table: one row per network (params, MACs, per-target DSC, mean DSC/HD95) -> .json, .md, .png."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from unetr_pp.comparison.runs import NetworkRun
from unetr_pp.utilities.files import atomic_path, save_json

REPORT_FILES = ("comparison.json", "comparison.md", "comparison.png")
RECIPE_LINES = {
    "nnunet": "the common nnU-Net/UNETR++ recipe for every network (`--recipe nnunet`)",
    "seed": "each network under its own paper's recipe (`--recipe seed`, column recipe: docs/training.md "
            "\"Recipes\"); nnunet where a network has no seed recipe that fits the task",
}


def result_row(run: NetworkRun, status: str, complexity: dict | None, summary: dict | None,
               reason: str = "", summary_file: str | None = None) -> dict:
    """One table row of `run` (network, trainer, recipe) from an evaluation summary (unetr_pp.evaluation.report
    format) and params/MACs.

    status: `trained` or `reused` (summary given) or `failed` (reason given).
    """
    complexity = complexity or {}
    row = {"network": run.network, "trainer": run.trainer, "recipe": run.recipe, "status": status, "reason": reason,
           "params": complexity.get("params"), "macs": complexity.get("macs"),
           "dice": {}, "hd95": {}, "mean_dice": None, "mean_hd95": None, "hd95_unit": None,
           "num_cases": None, "summary_file": summary_file}
    if summary is not None:
        row.update(dice={name: m["Dice"] for name, m in summary["mean"].items()},
                   hd95={name: m["HD95"] for name, m in summary["mean"].items()},
                   mean_dice=summary["foreground_mean"]["Dice"], mean_hd95=summary["foreground_mean"]["HD95"],
                   hd95_unit=summary["hd95_unit"], num_cases=len(summary["metric_per_case"]))
    return row


def target_names(rows: Sequence[dict]) -> list[str]:
    """Per-target columns: every target of any row, in order of first appearance."""
    names: list[str] = []
    for row in rows:
        names += [name for name in row["dice"] if name not in names]
    return names


def _num(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(meta: dict, rows: Sequence[dict]) -> str:
    """comparison.md: the seeds' results table (DSC in %, params in M, MACs in G) plus the settings."""
    names = target_names(rows)
    units = sorted({row["hd95_unit"] for row in rows if row["hd95_unit"]}) or ["mm"]
    header = ["network", "recipe", "params (M)", "MACs (G)", *names, "mean DSC (%) ↑", f"mean HD95 ({'/'.join(units)}) ↓",
              "status"]
    lines = [
        f"# Architecture comparison: {meta['task']}, {meta['configuration']}, fold {meta['fold']}",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---" + "|---:" * (len(header) - 3) + "|---|",
    ]
    for row in rows:
        status = row["status"] + (f": {row['reason']}" if row["status"] == "failed" else "")
        cells = [row["network"], row["recipe"], _num(row["params"], 1e-6), _num(row["macs"], 1e-9),
                 *(_num(row["dice"].get(name), 100.0) for name in names),
                 _num(row["mean_dice"], 100.0), _num(row["mean_hd95"]), _cell(status)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- budget (same for every network): {meta['budget_description']}",
        f"- recipe: {RECIPE_LINES[meta['recipe']]}",
        f"- plans: {meta['plans_identifier']}, patch size {meta['patch_size']}; params and MACs of each network "
        f"built for that patch ({meta['macs_convention']} MAC count, batch 1)",
        f"- metrics: {meta['evaluation']}; per-target columns are mean DSC (%) over the validation cases",
        "- status: trained = trained in this run, reused = finished fold with the same budget (not retrained)",
    ]
    if meta.get("slices"):
        lines.append(meta["slices"])
    return "\n".join(lines) + "\n"


def bar_chart(meta: dict, rows: Sequence[dict], path: Path) -> None:
    """comparison.png: mean DSC and mean HD95 per network (failed networks marked), matplotlib Agg."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = [row["network"] for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(rows) + 4), 4.5))
    unit = next((row["hd95_unit"] for row in rows if row["hd95_unit"]), "mm")
    for ax, key, scale, title in ((axes[0], "mean_dice", 100.0, "mean DSC (%) ↑"),
                                  (axes[1], "mean_hd95", 1.0, f"mean HD95 ({unit}) ↓")):
        values = [0.0 if row[key] is None else row[key] * scale for row in rows]
        bars = ax.bar(labels, values, color=["#d62728" if row["status"] == "failed" else "#1f77b4" for row in rows])
        for bar, row, value in zip(bars, rows, values):
            text = "failed" if row["status"] == "failed" else ("–" if row[key] is None else f"{value:.1f}")
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(f"{meta['task']} fold {meta['fold']}: {meta['budget_description']}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_comparison(meta: dict, rows: Sequence[dict], out_dir: str | Path) -> list[Path]:
    """Write comparison.json / .md / .png (each atomically) into `out_dir`; their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in REPORT_FILES]
    save_json({**meta, "targets": target_names(rows), "networks": list(rows)}, paths[0])
    with atomic_path(paths[1], suffix=".md") as tmp:
        tmp.write_text(markdown_report(meta, rows))
    bar_chart(meta, rows, paths[2])
    return paths
