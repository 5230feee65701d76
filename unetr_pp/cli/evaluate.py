"""unetr_pp_evaluate: per-case, per-organ DSC and HD95 of a prediction folder -> summary.json/.csv/.md."""
from __future__ import annotations

import argparse
from pathlib import Path

from unetr_pp.evaluation.folders import DEFAULT_NUM_PROCESSES, evaluate_folders
from unetr_pp.evaluation.metrics import EMPTY_CONVENTIONS, HD95_UNITS
from unetr_pp.evaluation.overlays import METRICS_PLOT, PLOTS_FOLDER, SLICE_MODES, PlotOptions
from unetr_pp.evaluation.protocols import ALL_LABELS, PROTOCOL_CHOICES
from unetr_pp.evaluation.report import SUMMARY_FILES
from unetr_pp.utilities.errors import UnetrPPError, cli_main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unetr_pp_evaluate",
        description="Dice and HD95 (medpy definition, exact) per case and label; files are matched by name.",
    )
    parser.add_argument("-ref", required=True, type=Path, help="folder of reference label images")
    parser.add_argument("-pred", required=True, type=Path, help="folder of predicted label images")
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default=ALL_LABELS,
                        help="synapse (8 organs), btcv (13), acdc (RV/Myo/LV), brats (WT/TC/ET regions) or "
                             "all-labels (default: labels of dataset.json, else every label present)")
    parser.add_argument("-l", "--labels", type=int, nargs="+", help="evaluate only these label ids")
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
    parser.add_argument("--plots", action="store_true",
                        help="also draw plots/<case>.png (image with reference and prediction contours, three "
                             "slices) and plots/metrics.png (DSC and HD95 per organ over cases)")
    parser.add_argument("-img", "--images", type=Path,
                        help="with --plots: folder of the images (<case>_0000.nii.gz, e.g. imagesTs; default: "
                             "contours on a gray background)")
    parser.add_argument("--plots_slices", nargs="+", choices=SLICE_MODES, default=["disagreement"],
                        help="with --plots: slices through the largest disagreement (default) and/or each organ's "
                             "centre (one row each)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Entry point of unetr_pp_evaluate."""
    args = _parser().parse_args(argv)
    out_dir = args.output or args.pred
    if args.images is not None and not args.plots:
        raise UnetrPPError("-img is only used to draw the plots: add --plots")
    plots = PlotOptions(args.images, tuple(args.plots_slices)) if args.plots else None
    evaluate_folders(
        args.ref, args.pred, protocol=args.protocol, labels=args.labels, hd95_unit=args.hd95_unit,
        empty=args.empty, out_dir=out_dir, num_processes=args.num_processes, dataset_json=args.dataset_json,
        only_predicted=args.only_predicted, plots=plots,
    )
    print((out_dir / "summary.md").read_text())
    print(f"written: {', '.join(str(out_dir / name) for name in SUMMARY_FILES)}")
    if plots is not None:
        print(f"plots: {out_dir / PLOTS_FOLDER}/<case>.png, {out_dir / PLOTS_FOLDER / METRICS_PLOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
