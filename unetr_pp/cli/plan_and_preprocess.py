"""`unetr_pp_plan_and_preprocess`: integrity (optional) -> crop + fingerprint -> plans -> preprocessed data."""
from __future__ import annotations

import argparse

from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER
from unetr_pp.planning.presets import available_presets
from unetr_pp.experiment.plan_and_preprocess import PlanAndPreprocessOptions, plan_and_preprocess
from unetr_pp.utilities.parallel import dask_runner
from unetr_pp.utilities.errors import cli_main

CONFIGURATIONS = ("3d_fullres", "3d_lowres")


def _parser() -> argparse.ArgumentParser:
    default_np = "min(8, CPUs), lowered to fit the available memory"
    parser = argparse.ArgumentParser(
        prog="unetr_pp_plan_and_preprocess",
        description="Fingerprint, plan and preprocess a raw task from $unetr_pp_raw_data_base/unetr_pp_raw_data "
                    "into $unetr_pp_preprocessed.")
    parser.add_argument("-t", "--task", required=True, help="task id (2) or name (Task002_Synapse)")
    parser.add_argument("--verify_dataset_integrity", action="store_true",
                        help="check every case (files, geometry, labels) before planning")
    parser.add_argument("-tl", type=int, default=None, help=f"processes for 3d_lowres (default {default_np})")
    parser.add_argument("-tf", type=int, default=None,
                        help=f"processes for 3d_fullres and the fingerprint (default {default_np})")
    parser.add_argument("--preset", choices=available_presets(), help="dataset preset applied to 3d_fullres")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="set a 3d_fullres plans key, JSON value, dotted keys allowed "
                             "(e.g. patch_size=[32,64,64], batch_size=4); repeatable")
    parser.add_argument("-c", nargs="+", choices=CONFIGURATIONS, default=None,
                        help="configurations to preprocess (default: every planned one)")
    parser.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER,
                        help=f"plans file name (default {DEFAULT_PLANS_IDENTIFIER})")
    parser.add_argument("--no_preprocessing", action="store_true", help="stop after writing the plans")
    parser.add_argument("--dask", metavar="ADDRESS", help="run per-case work on this Dask scheduler, e.g. tcp://host:8786 "
                     "(needs pip install \"unetr_pp[dask]\"; workers need unetr_pp and the same data paths)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    with dask_runner(args.dask):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command on parsed arguments."""
    folder = plan_and_preprocess(PlanAndPreprocessOptions(
        task=args.task, verify_integrity=args.verify_dataset_integrity, preset=args.preset,
        overrides=args.override, configurations=args.c, plans_identifier=args.plans_identifier,
        processes_lowres=args.tl, processes_fullres=args.tf, preprocess=not args.no_preprocessing,
    ))
    print(f"done: {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
