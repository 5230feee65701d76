"""`unetr_pp_compare`: train (or reuse) several architectures on one fold and write the comparison table;
with --table, lay existing results (CV or test) out like the seeds' tables."""
from __future__ import annotations

import argparse
from typing import Sequence

import torch

from unetr_pp.comparison import ComparisonOptions, parse_budget, run_comparison
from unetr_pp.comparison.table import TableOptions, build_table, default_table_folder, write_table
from unetr_pp.evaluation.protocols import PROTOCOL_CHOICES
from unetr_pp.networks.registry import NETWORK_NAMES
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, resolve_task
from unetr_pp.training.recipes import check_recipe_choice
from unetr_pp.utilities.errors import UnetrPPError, cli_main

DEFAULT_NETWORKS = ("unetr_pp", "unetr", "uxnet", "repuxnet", "deformuxnet", "nnunet")


def _fold(text: str) -> str:
    """A fold number (fold `all` has no held-out cases to compare on)."""
    if not text.isdigit():
        raise UnetrPPError(f"--fold {text!r}: expected a fold number (0, 1, ...); fold all has no validation cases")
    return text


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the command."""
    parser = argparse.ArgumentParser(
        prog="unetr_pp_compare",
        description="Train (or reuse) each architecture on one fold of a preprocessed task under the same plans "
                    "and budget, and write comparison.{md,json,png} (params, MACs, per-target DSC, mean DSC/HD95) "
                    "to $RESULTS_FOLDER/unetr_pp/<config>/<task>/comparison_fold<k>/. A network whose fold is "
                    "finished with the same budget is not retrained.",
    )
    parser.add_argument("-t", "--task", required=True, nargs="+",
                        help="task id or name, e.g. 990 or Task990_Demo (several only with --table)")
    parser.add_argument("--networks", nargs="+", default=list(DEFAULT_NETWORKS), choices=NETWORK_NAMES,
                        metavar="NET", help=f"architectures, trained as <NET>_trainer (default: "
                                            f"{' '.join(DEFAULT_NETWORKS)}; also: "
                                            f"{' '.join(n for n in NETWORK_NAMES if n not in DEFAULT_NETWORKS)})")
    parser.add_argument("--fold", default="0", help="fold to train and compare on (default 0)")
    parser.add_argument("--budget", metavar="EPOCHSxITERS",
                        help="epochs x iterations per epoch for every network, e.g. 14x25 (default: the trainers' "
                             "defaults)")
    parser.add_argument("--recipe", default="nnunet",
                        help="nnunet (default: every network under the common nnU-Net/UNETR++ recipe) or seed (each "
                             "under its own paper's recipe, the common one where it has none that fits; results in "
                             "<TRAINER>-seed__<plans_id> folders and comparison_fold<k>_seed)")
    parser.add_argument("--val_iters", type=int, help="validation iterations per epoch (default: the trainers')")
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES,
                        help="re-evaluate each fold's validation_raw with this protocol (default: use the fold's "
                             "validation_raw/summary.json)")
    parser.add_argument("--disable_tta", action="store_true",
                        help="validate without test-time mirroring (passes --val_disable_tta to the trainer)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="training device (default: cuda when available)")
    parser.add_argument("-m", "--configuration", default="3d_fullres", help="plans configuration (default 3d_fullres)")
    parser.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER,
                        help=f"plans identifier (default {DEFAULT_PLANS_IDENTIFIER})")
    table = parser.add_argument_group("seeds' tables from existing results (--table; nothing is trained)")
    table.add_argument("--table", action="store_true",
                       help="rows = networks (params, MACs), columns = the task's organs (one task) or the tasks "
                            "(mean DSC); values = CV mean over folds from each <NET>_trainer's cv_summary.json")
    table.add_argument("--test_summary", metavar="TEMPLATE",
                       help="use test-set summary.json files instead of the CV, e.g. "
                            "'preds/{task}/{network}/summary.json' ({task}, {network}, {trainer} are filled in)")
    table.add_argument("--complexity", choices=("plans", "seed"), default="plans",
                       help="params/MACs at the trained plans' patch (exact MACs; default) or at the seeds' inputs "
                            "(96^3, each paper's MAC convention)")
    table.add_argument("-o", "--output", help="output folder of seed_table.{json,md,png} (default "
                                              "$RESULTS_FOLDER/unetr_pp/<config>/seed_tables/<tasks>_<cv|test>)")
    return parser


def _table(args: argparse.Namespace) -> int:
    """Write the seeds' table from existing results and print it."""
    options = TableOptions(
        tasks=[resolve_task(t) for t in args.task], networks=args.networks, test_summary=args.test_summary,
        complexity=args.complexity, configuration=args.configuration, plans_identifier=args.plans_identifier,
    )
    for flag, values in (("-t", options.tasks), ("--networks", options.networks)):
        if len(set(values)) != len(values):
            raise UnetrPPError(f"{flag} lists a value twice: {' '.join(values)}")
    paths = write_table(build_table(options), args.output or default_table_folder(options))
    print(paths[1].read_text())
    print(f"written: {', '.join(map(str, paths))}")
    return 0


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the table; exit code 1 when a network failed."""
    args = build_parser().parse_args(argv)
    check_recipe_choice(args.recipe)
    if args.table:
        training_only = [flag for flag, value in (("--budget", args.budget), ("--val_iters", args.val_iters),
                                                  ("--recipe", args.recipe != "nnunet"),
                                                  ("--protocol", args.protocol), ("--disable_tta", args.disable_tta),
                                                  ("--device", args.device), ("--fold", args.fold != "0")) if value]
        if training_only:
            raise UnetrPPError(f"--table reads existing results; {', '.join(training_only)} cannot be used with it")
        return _table(args)
    table_only = [flag for flag, value in (("--test_summary", args.test_summary), ("-o", args.output),
                                           ("--complexity", args.complexity != "plans")) if value]
    if table_only:
        raise UnetrPPError(f"{', '.join(table_only)} only go with --table")
    if len(args.task) > 1:
        raise UnetrPPError("training a comparison takes one task (-t); several tasks only with --table")
    options = ComparisonOptions(
        task=resolve_task(args.task[0]), networks=args.networks, fold=_fold(args.fold),
        budget=parse_budget(args.budget, args.val_iters, args.disable_tta), protocol=args.protocol,
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"), configuration=args.configuration,
        plans_identifier=args.plans_identifier, recipe=args.recipe,
    )
    rows, paths = run_comparison(options)
    print()
    print(paths[1].read_text())
    print(f"written: {', '.join(map(str, paths))}")
    failed = [row["network"] for row in rows if row["status"] == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (see the status column)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
