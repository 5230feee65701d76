"""The seeds' results tables from existing results: rows = architectures (params, MACs), columns = organs or tasks.

Values come from each network's trainer folder (`<network>_trainer__<plans>`): the cross-validation
report `cv_summary.json` (mean over folds, after postprocessing when one was applied) or, with a
test-summary template, the evaluator's `summary.json` of a test set. Nothing is trained or evaluated.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unetr_pp.comparison.compare import complexity_of
from unetr_pp.io.plans import Configuration, Plans
from unetr_pp.networks.complexity import seed_plans_config, summarize
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, preprocessed_folder, results_folder
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path, load_json, save_json

TABLE_FILES = ("seed_table.json", "seed_table.md", "seed_table.png")
CV_SUMMARY = "cv_summary.json"
SIDECAR = "model_final_checkpoint.model.json"
TEMPLATE_KEYS = ("task", "network", "trainer")


@dataclass(frozen=True)
class TableOptions:
    """Tasks (columns when several), networks (rows), where the values come from, params/MACs convention."""

    tasks: Sequence[str]
    networks: Sequence[str]
    test_summary: str | None = None
    complexity: str = "plans"
    configuration: str = "3d_fullres"
    plans_identifier: str = DEFAULT_PLANS_IDENTIFIER


def trainer_dir(options: TableOptions, task: str, network: str) -> Path:
    """`$RESULTS_FOLDER/unetr_pp/<config>/<task>/<network>_trainer__<plans>`."""
    return results_folder() / options.configuration / task / f"{network}_trainer__{options.plans_identifier}"


def plans_config_of(options: TableOptions, task: str, network: str) -> Configuration | None:
    """The plans configuration a network was trained with (a fold's checkpoint sidecar, else the task's plans)."""
    for sidecar in sorted(trainer_dir(options, task, network).glob(f"fold_*/{SIDECAR}")):
        plans = Plans.from_json(load_json(sidecar).get("plans"), str(sidecar))
        if options.configuration in plans.configurations:
            return plans.configuration(options.configuration)
    try:
        path = preprocessed_folder() / task / f"{options.plans_identifier}.json"
    except UnetrPPError:
        return None
    plans = Plans.load(path) if path.is_file() else None
    return plans.configuration(options.configuration) if plans and options.configuration in plans.configurations \
        else None


def _summary_path(options: TableOptions, task: str, network: str) -> Path:
    if options.test_summary is None:
        return trainer_dir(options, task, network) / CV_SUMMARY
    return Path(options.test_summary.format(task=task, network=network, trainer=f"{network}_trainer"))


def read_result(options: TableOptions, task: str, network: str) -> dict:
    """{dice {target: v}, hd95 {target: v}, mean_dice, mean_hd95, hd95_unit, source, std} or {missing: why}."""
    path = _summary_path(options, task, network)
    if not path.is_file():
        return {"missing": f"no {path}"}
    data = load_json(path)
    try:
        if options.test_summary is None:
            applied = data["postprocessing"] and data["postprocessing"]["steps"]
            stage = data["after_postprocessing" if applied else "before_postprocessing"]["fold_mean"]
            source = (f"CV mean over folds {' '.join(data['folds_used'])}, "
                      f"{'after' if applied else 'without'} postprocessing")
        else:
            stage, source = data, f"test set, {len(data['metric_per_case'])} cases"
        mean, foreground = stage["mean"], stage["foreground_mean"]
        return {"dice": {k: v["Dice"] for k, v in mean.items()}, "hd95": {k: v["HD95"] for k, v in mean.items()},
                "mean_dice": foreground["Dice"], "mean_hd95": foreground["HD95"],
                "mean_dice_std": foreground.get("Dice_std"), "hd95_unit": data["hd95_unit"], "source": source,
                "file": str(path)}
    except (KeyError, TypeError):
        raise UnetrPPError(f"{path}: not a {'cv_summary.json' if options.test_summary is None else 'summary.json'} "
                           "of unetr_pp_evaluate") from None


def _complexity(options: TableOptions, network: str) -> tuple[dict | None, str]:
    if options.complexity == "seed":
        return summarize(network, seed_plans_config(network), "paper"), "the seeds' inputs (96³, UNETR++ at its " \
            "Synapse patch), each paper's MAC convention"
    for task in options.tasks:
        config = plans_config_of(options, task, network)
        if config is not None:
            found, why = complexity_of(network, config)
            return found, why or f"patch {list(config.patch_size)} of {task}'s plans, exact MACs"
    return None, "no plans found (train a fold or preprocess the task)"


def build_table(options: TableOptions) -> dict:
    """The table as a dict: meta, columns, and one row per network with its values per task."""
    if options.test_summary is not None:
        unknown = [k for k in _template_keys(options.test_summary) if k not in TEMPLATE_KEYS]
        if unknown:
            raise UnetrPPError(f"--test_summary {options.test_summary!r}: unknown placeholder(s) "
                               f"{', '.join('{' + k + '}' for k in unknown)} (use {{task}}, {{network}}, {{trainer}})")
    rows = []
    for network in options.networks:
        complexity, note = _complexity(options, network)
        results = {task: read_result(options, task, network) for task in options.tasks}
        rows.append({"network": network, "params": (complexity or {}).get("params"),
                     "macs": (complexity or {}).get("macs"), "complexity_note": note, "results": results})
    if all("missing" in r for row in rows for r in row["results"].values()):
        raise UnetrPPError("no results to tabulate: " + "; ".join(
            f"{row['network']} {task}: {r['missing']}" for row in rows for task, r in row["results"].items()))
    single = len(options.tasks) == 1
    columns = _target_columns(rows, options.tasks[0]) if single else list(options.tasks)
    return {"tasks": list(options.tasks), "configuration": options.configuration,
            "plans_identifier": options.plans_identifier, "source": "test" if options.test_summary else "cv",
            "test_summary": options.test_summary, "complexity": options.complexity,
            "layout": "organs" if single else "tasks", "columns": columns, "networks": rows}


def _template_keys(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise UnetrPPError(f"--test_summary {template!r}: {err}") from None


def _target_columns(rows: Sequence[dict], task: str) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [n for n in row["results"][task].get("dice", {}) if n not in names]
    return names


def _num(value: float | None, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.2f}"


def _cells(table: dict, row: dict) -> list[float | None]:
    """DSC values (0..1) of the row for the table's columns."""
    if table["layout"] == "organs":
        return [row["results"][table["tasks"][0]].get("dice", {}).get(c) for c in table["columns"]]
    return [row["results"][task].get("mean_dice") for task in table["tasks"]]


def markdown_table(table: dict) -> str:
    """seed_table.md: network | params (M) | MACs (G) | DSC (%) per column | (one task: mean DSC, mean HD95)."""
    single = table["layout"] == "organs"
    units = sorted({r["results"][t]["hd95_unit"] for r in table["networks"] for t in table["tasks"]
                    if "hd95_unit" in r["results"][t]}) or ["mm"]
    header = ["network", "params (M)", "MACs (G)", *table["columns"]]
    header += ["mean DSC (%) ↑", f"mean HD95 ({'/'.join(units)}) ↓"] if single else []
    lines = [f"# {'CV mean' if table['source'] == 'cv' else 'Test'} DSC (%): {', '.join(table['tasks'])}", "",
             "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for row in table["networks"]:
        cells = [row["network"], _num(row["params"], 1e-6), _num(row["macs"], 1e-9),
                 *(_num(v, 100.0) for v in _cells(table, row))]
        if single:
            result = row["results"][table["tasks"][0]]
            cells += [_num(result.get("mean_dice"), 100.0), _num(result.get("mean_hd95"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for row in table["networks"]:
        sources = [f"{task}: {r.get('source') or r['missing']}" for task, r in row["results"].items()]
        lines.append(f"- {row['network']}: params/MACs: {row['complexity_note']}; {'; '.join(sources)}")
    if not single:
        lines.append("- columns: mean DSC (%) over each task's targets")
    return "\n".join(lines) + "\n"


def bar_chart(table: dict, path: Path) -> None:
    """seed_table.png: grouped bars, one group per network, one bar per column (DSC %), matplotlib Agg."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows, columns = table["networks"], table["columns"]
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.5 * len(rows) * len(columns) + 3), 4.5))
    for index, column in enumerate(columns):
        values = [_cells(table, row)[index] for row in rows]
        positions = [i + (index - (len(columns) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(positions, [0.0 if v is None else v * 100 for v in values], width, label=column)
    for i, row in enumerate(rows):
        if all(v is None for v in _cells(table, row)):
            ax.annotate("no result", (i, 0.0), ha="center", va="bottom", fontsize=8, color="#d62728")
    ax.set_xticks(range(len(rows)), [row["network"] for row in rows], rotation=30)
    ax.set_ylabel("DSC (%)")
    ax.set_title(f"{'CV mean' if table['source'] == 'cv' else 'test'}: {', '.join(table['tasks'])}", fontsize=9)
    ax.legend(fontsize=7, ncol=min(len(columns), 5))
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def default_table_folder(options: TableOptions) -> Path:
    """`$RESULTS_FOLDER/unetr_pp/<config>/seed_tables/<task>[+<task>...]_<cv|test>`."""
    source = "test" if options.test_summary else "cv"
    return results_folder() / options.configuration / "seed_tables" / f"{'+'.join(options.tasks)}_{source}"


def write_table(table: dict, out_dir: str | Path) -> list[Path]:
    """Write seed_table.json / .md / .png (each atomically) into `out_dir`; their paths."""
    paths = [Path(out_dir) / name for name in TABLE_FILES]
    save_json(table, paths[0])
    with atomic_path(paths[1], suffix=".md") as tmp:
        tmp.write_text(markdown_table(table))
    bar_chart(table, paths[2])
    return paths
