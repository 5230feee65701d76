"""unetr_pp_evaluate: per-case, per-organ DSC and HD95 of a prediction folder -> summary.json/.csv/.md;
with --cv, the cross-validation report of a trainer's folds -> cv_summary.* and postprocessing.json."""
from __future__ import annotations

import argparse
from pathlib import Path

from unetr_pp.evaluation.cross_validation import DEFAULT_FOLDS, CVOptions, run_cross_validation
from unetr_pp.evaluation.folders import DEFAULT_NUM_PROCESSES, evaluate_folders
from unetr_pp.evaluation.metrics import EMPTY_CONVENTIONS, HD95_UNITS
from unetr_pp.evaluation.overlays import METRICS_PLOT, PLOTS_FOLDER, SLICE_MODES, PlotOptions
from unetr_pp.evaluation.protocols import ALL_LABELS, PROTOCOL_CHOICES
from unetr_pp.evaluation.report import SUMMARY_FILES
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, resolve_task
from unetr_pp.utilities.parallel import dask_runner
from unetr_pp.utilities.errors import UnetrPPError, cli_main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unetr_pp_evaluate",
        description="Dice and HD95 (medpy definition, exact) per case and label; files are matched by name. "
                    "With --cv: the cross-validation report of a trained model's folds.",
    )
    parser.add_argument("-ref", type=Path, help="folder of reference label images")
    parser.add_argument("-pred", type=Path, help="folder of predicted label images")
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default=ALL_LABELS,
                        help="synapse (8 organs), btcv (13), acdc, brats (WT/TC/ET), amos (15), flare (4), feta (7), "
                             "kits / lits / msd_pancreas / msd_hepatic_vessel (organ incl. lesion, lesion) or "
                             "all-labels (default: labels of dataset.json, else every label present)")
    parser.add_argument("-l", "--labels", type=int, nargs="+", help="evaluate only these label ids")
    parser.add_argument("--label_map", metavar="PRED:REF,...",
                        help="external testing: map predicted labels onto reference labels first, e.g. '3:1' or "
                             "'1+2:1' (merged); unmapped predicted labels become background")
    parser.add_argument("--hd95-unit", choices=HD95_UNITS, default="mm",
                        help="mm: image spacing (default); voxel: array grid, as the UNETR++ paper")
    parser.add_argument("--empty", choices=EMPTY_CONVENTIONS, default="nan",
                        help="empty-mask convention: nan (default, undefined values excluded) or unetrpp "
                             "(both empty: Dice 1/HD95 0, one empty: 0/0, as the UNETR++ paper)")
    parser.add_argument("-o", "--output", type=Path, help="output folder for summary.* (default: -pred)")
    parser.add_argument("-np", "--num_processes", type=int, default=DEFAULT_NUM_PROCESSES,
                        help=f"cases evaluated in parallel (default {DEFAULT_NUM_PROCESSES})")
    parser.add_argument("--dataset_json", type=Path,
                        help="dataset.json whose labels to evaluate (default: found beside -ref or one folder up)")
    parser.add_argument("--only-predicted", action="store_true",
                        help="evaluate only references that have a prediction (default: a missing one is an error)")
    cv = parser.add_argument_group("cross-validation (--cv)")
    cv.add_argument("--cv", action="store_true",
                    help="evaluate every finished fold's validation_raw against the raw labelsTr; writes "
                         "cv_summary.{json,csv,md} and postprocessing.json into the trainer folder")
    cv.add_argument("-t", "--task", help="task id or name (with --cv)")
    cv.add_argument("-tr", "--trainer", help="trainer name, e.g. unetr_pp_trainer (with --cv)")
    cv.add_argument("--folds", nargs="+", default=list(DEFAULT_FOLDS), help="folds (default 0 1 2 3 4)")
    cv.add_argument("-c", "-m", "--configuration", default="3d_fullres", help="configuration (default 3d_fullres)")
    cv.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER,
                    help=f"plans identifier (default {DEFAULT_PLANS_IDENTIFIER})")
    cv.add_argument("--no_postprocessing", action="store_true",
                    help="do not decide the largest-component postprocessing (no postprocessing.json)")
    parser.add_argument("--plots", action="store_true",
                        help="also draw plots/<case>.png (image with reference and prediction contours, three "
                             "slices) and plots/metrics.png (DSC and HD95 per organ over cases)")
    parser.add_argument("-img", "--images", type=Path,
                        help="with --plots: folder of the images (<case>_0000.nii.gz, e.g. imagesTs; default: "
                             "contours on a gray background)")
    parser.add_argument("--plots_slices", nargs="+", choices=SLICE_MODES, default=["disagreement"],
                        help="with --plots: slices through the largest disagreement (default) and/or each organ's "
                             "centre (one row each)")
    parser.add_argument("--dask", metavar="ADDRESS", help="run per-case work on this Dask scheduler, e.g. tcp://host:8786 "
                     "(needs pip install \"unetr_pp[dask]\"; workers need unetr_pp and the same data paths)")
    return parser


def _cross_validation(args: argparse.Namespace) -> int:
    misplaced = [flag for flag, value in (("-ref", args.ref), ("-pred", args.pred), ("-o", args.output),
                                          ("-l", args.labels), ("--label_map", args.label_map),
                                          ("--dataset_json", args.dataset_json)) if value]
    if misplaced:
        raise UnetrPPError(f"--cv reads the trainer's folds; {', '.join(misplaced)} cannot be used with it")
    if not args.task or not args.trainer:
        raise UnetrPPError("--cv needs -t TASK and -tr TRAINER")
    options = CVOptions(
        task=resolve_task(args.task), trainer=args.trainer, folds=tuple(args.folds), configuration=args.configuration,
        plans_identifier=args.plans_identifier, protocol=args.protocol, hd95_unit=args.hd95_unit, empty=args.empty,
        num_processes=args.num_processes, postprocessing=not args.no_postprocessing,
    )
    _, paths = run_cross_validation(options)
    print(paths[2].read_text())
    print(f"written: {', '.join(map(str, paths))}")
    return 0


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Entry point of unetr_pp_evaluate."""
    args = _parser().parse_args(argv)
    with dask_runner(args.dask):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command on parsed arguments."""
    if args.cv:
        return _cross_validation(args)
    cv_only = [flag for flag, value in (("-t", args.task), ("-tr", args.trainer),
                                        ("--no_postprocessing", args.no_postprocessing)) if value]
    if cv_only:
        raise UnetrPPError(f"{', '.join(cv_only)} only go with --cv")
    if args.ref is None or args.pred is None:
        raise UnetrPPError("give -ref LABELS and -pred PREDICTIONS (or --cv -t TASK -tr TRAINER)")
    out_dir = args.output or args.pred
    if args.images is not None and not args.plots:
        raise UnetrPPError("-img is only used to draw the plots: add --plots")
    plots = PlotOptions(args.images, tuple(args.plots_slices)) if args.plots else None
    evaluate_folders(
        args.ref, args.pred, protocol=args.protocol, labels=args.labels, hd95_unit=args.hd95_unit,
        empty=args.empty, out_dir=out_dir, num_processes=args.num_processes, dataset_json=args.dataset_json,
        only_predicted=args.only_predicted, label_map=args.label_map, plots=plots,
    )
    print((out_dir / "summary.md").read_text())
    print(f"written: {', '.join(str(out_dir / name) for name in SUMMARY_FILES)}")
    if plots is not None:
        print(f"plots: {out_dir / PLOTS_FOLDER}/<case>.png, {out_dir / PLOTS_FOLDER / METRICS_PLOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
