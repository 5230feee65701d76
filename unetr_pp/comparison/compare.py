"""Train (or reuse) each architecture on one fold under the same plans and budget, then tabulate the results."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from unetr_pp.comparison.report import result_row, write_comparison
from unetr_pp.comparison.runs import VALIDATION_SUMMARY, Budget, NetworkRun, run_training, training_decision
from unetr_pp.comparison.slices import write_comparison_slices
from unetr_pp.evaluation.folders import evaluate_folders
from unetr_pp.evaluation.protocols import ALL_LABELS
from unetr_pp.io.plans import Configuration, Plans
from unetr_pp.networks.complexity import summarize
from unetr_pp.networks.registry import NETWORK_NAMES
from unetr_pp.paths import preprocessed_folder, raw_data_folder, results_folder
from unetr_pp.training.recipes import NNUNET, check_recipe_choice, comparison_recipe
from unetr_pp.training.trainers import get_trainer_class
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

MACS_CONVENTION = "exact"


@dataclass
class ComparisonOptions:
    """What to compare: task (full name), networks, fold, budget, evaluation protocol (None = validation summary)."""

    task: str
    networks: Sequence[str]
    fold: str = "0"
    budget: Budget = field(default_factory=Budget)
    protocol: str | None = None
    device: str | None = None
    configuration: str = "3d_fullres"
    plans_identifier: str = "unetr_pp_Plansv2.1"
    recipe: str = "nnunet"


def comparison_folder(options: ComparisonOptions) -> Path:
    """`$RESULTS_FOLDER/unetr_pp/<config>/<task>/comparison_fold<k>` (`..._seed` with `--recipe seed`)."""
    suffix = "_seed" if options.recipe == "seed" else ""
    return results_folder() / options.configuration / options.task / f"comparison_fold{options.fold}{suffix}"


def load_plans(options: ComparisonOptions) -> Plans:
    """The plans every network is trained with (from the preprocessed task folder)."""
    path = preprocessed_folder() / options.task / f"{options.plans_identifier}.json"
    if not path.is_file():
        raise UnetrPPError(f"{path}: plans not found; run unetr_pp_plan_and_preprocess -t {options.task} first")
    plans = Plans.load(path)
    plans.configuration(options.configuration)
    return plans


def network_run(network: str, options: ComparisonOptions, regions: bool) -> NetworkRun:
    """The network's fold under the recipe it trains with; prints one line when a seed recipe is asked for but the
    network has none that fits the task (it trains under the common nnunet recipe then)."""
    recipe = NNUNET
    if options.recipe == "seed":
        trainer = f"{network}_trainer"
        recipe, why_not = comparison_recipe("seed", get_trainer_class(trainer).seed_recipe, trainer, regions)
        if why_not is not None:
            print(f"== {network}: {why_not}; trained with the common nnunet recipe", flush=True)
    return NetworkRun(network, options.task, options.fold, options.configuration, options.plans_identifier,
                      recipe.name)


def complexity_of(network: str, plans_config: Configuration) -> tuple[dict | None, str]:
    """(params/MACs for the plans' patch, error text); a network that cannot take the patch gives (None, why)."""
    try:
        return summarize(network, plans_config.to_json(), MACS_CONVENTION), ""
    except UnetrPPError as err:
        return None, str(err)


def fold_summary(run: NetworkRun, options: ComparisonOptions, out_dir: Path) -> tuple[dict, Path]:
    """The fold's validation summary, or a re-evaluation of validation_raw with options.protocol."""
    if options.protocol is None:
        path = run.fold_dir / VALIDATION_SUMMARY
        return load_json(path), path
    raw_task = raw_data_folder() / options.task
    target = out_dir / "evaluation" / run.network
    dataset_json = raw_task / "dataset.json" if options.protocol == ALL_LABELS else None  # named: fixed labels
    summary = evaluate_folders(raw_task / "labelsTr", run.fold_dir / "validation_raw", protocol=options.protocol,
                               out_dir=target, dataset_json=dataset_json, only_predicted=True)
    return summary, target / "summary.json"


def compare_network(run: NetworkRun, options: ComparisonOptions, plans_config: Configuration, out_dir: Path) -> dict:
    """Train or reuse one network's fold and return its table row (status failed with the reason on errors)."""
    network = run.network
    complexity, complexity_error = complexity_of(network, plans_config)
    if complexity is None:
        return result_row(run, "failed", None, None, complexity_error)
    train, why = training_decision(run, options.budget)
    print(f"\n== {network}: {'training' if train else 'reusing'} ({why})", flush=True)
    if train:
        failure = run_training(run, options.budget, options.device)
        if failure is not None:
            print(f"== {network}: failed: {failure}", flush=True)
            return result_row(run, "failed", complexity, None, failure)
    try:
        summary, path = fold_summary(run, options, out_dir)
    except UnetrPPError as err:
        return result_row(run, "failed", complexity, None, f"evaluation failed: {err}")
    return result_row(run, "trained" if train else "reused", complexity, summary, summary_file=str(path))


def evaluation_description(options: ComparisonOptions, rows: Sequence[dict]) -> str:
    """Which summary the DSC/HD95 come from."""
    cases = sorted({row["num_cases"] for row in rows if row["num_cases"] is not None})
    counted = f"{'/'.join(map(str, cases))} validation case(s) of fold {options.fold}" if cases else "no case"
    source = (f"validation_raw re-evaluated with protocol {options.protocol}" if options.protocol
              else "the fold's validation_raw/summary.json")
    return f"{source}, {counted}"


def run_comparison(options: ComparisonOptions) -> tuple[list[dict], list[Path]]:
    """Compare the networks; returns the rows and the written comparison.{json,md,png} (and comparison_slices.png)."""
    unknown = [n for n in options.networks if n not in NETWORK_NAMES]
    if unknown:
        raise UnetrPPError(f"unknown network(s) {', '.join(unknown)}; valid: {', '.join(NETWORK_NAMES)}")
    if len(set(options.networks)) != len(options.networks):
        raise UnetrPPError(f"--networks lists a network twice: {' '.join(options.networks)}")
    check_recipe_choice(options.recipe)
    plans = load_plans(options)
    plans_config = plans.configuration(options.configuration)
    out_dir = comparison_folder(options)
    runs = [network_run(network, options, plans.is_region_task) for network in options.networks]
    rows = [compare_network(run, options, plans_config, out_dir) for run in runs]
    slices, slices_line = write_comparison_slices(runs, rows, options.task, options.protocol, out_dir)
    meta = {
        "task": options.task, "configuration": options.configuration, "fold": options.fold,
        "plans_identifier": options.plans_identifier, "recipe": options.recipe, "patch_size": list(plans_config.patch_size),
        "budget": asdict(options.budget), "budget_description": options.budget.describe(),
        "protocol": options.protocol, "macs_convention": MACS_CONVENTION,
        "evaluation": evaluation_description(options, rows), "slices": slices_line,
    }
    return rows, write_comparison(meta, rows, out_dir) + ([slices] if slices is not None else [])
