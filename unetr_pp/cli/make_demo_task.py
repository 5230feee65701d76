"""`unetr_pp_make_demo_task`: write the synthetic multi-organ CT-like demo task."""
from __future__ import annotations

import argparse
from typing import Sequence

from unetr_pp.dataset.synthetic import make_demo_task
from unetr_pp.paths import raw_data_folder
from unetr_pp.utilities.errors import UnetrPPError, cli_main


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the command."""
    parser = argparse.ArgumentParser(
        prog="unetr_pp_make_demo_task",
        description="Write a small synthetic abdomen CT task (8 Synapse organs, heterogeneous spacing and "
                    "size) as DIR/Task<ID>_Demo, ready for unetr_pp_plan_and_preprocess.",
    )
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="folder to create the task in (default: $unetr_pp_raw_data_base/unetr_pp_raw_data)")
    parser.add_argument("--cases", type=int, default=10, help="training cases (default 10)")
    parser.add_argument("--test_cases", type=int, default=2, help="held-back test cases (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same task")
    parser.add_argument("-t", "--task_id", type=int, default=990, help="task id (default 990 -> Task990_Demo)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing task folder")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, write the task, print its folder."""
    args = build_parser().parse_args(argv)
    output = args.output
    if output is None:
        try:
            output = raw_data_folder()
        except UnetrPPError as err:
            raise UnetrPPError(f"no output folder: give -o DIR, or {err}") from None
    task = make_demo_task(output, task_id=args.task_id, num_cases=args.cases, num_test_cases=args.test_cases,
                          seed=args.seed, overwrite=args.overwrite)
    print(task)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
