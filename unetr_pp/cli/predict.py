"""`unetr_pp_predict`: predict a folder of raw cases with a trained model (folds ensembled), original geometry out."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

from unetr_pp.evaluation.previews import write_previews
from unetr_pp.inference.label_map import parse_label_map
from unetr_pp.inference.models import DEFAULT_CHECKPOINT, load_trained_model, trained_model_folder
from unetr_pp.inference.postprocessing import POSTPROCESSING_FILE, read_postprocessing
from unetr_pp.inference.predictor import PredictionOptions, predict_folder
from unetr_pp.inference.runtime import onnxruntime_model, require_onnxruntime
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, resolve_task, results_folder
from unetr_pp.utilities.errors import cli_main, problems_error
from unetr_pp.utilities.parallel import dask_runner
from unetr_pp.utilities.memory import keep_freed_memory

BACKENDS = ("torch", "onnxruntime")


def _fold(value: str) -> str:
    if value != "all" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"fold must be a number or 'all', not {value!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of `unetr_pp_predict`."""
    p = argparse.ArgumentParser(
        prog="unetr_pp_predict",
        description="Predict every case of a folder (<case_id>_0000.nii.gz, _0001, ...) with a trained model; "
                    "writes <OUT>/<case_id>.<ending> in each input's original geometry.",
    )
    p.add_argument("-i", "--input", required=True, help="folder with the images to predict (named as imagesTr)")
    p.add_argument("-o", "--output", required=True, help="output folder (must not be the input folder)")
    p.add_argument("-t", "--task", required=True, help="task id or name, e.g. 2 or Task002_Synapse")
    p.add_argument("-tr", "--trainer", required=True, help="trainer name used for training, e.g. unetr_pp_trainer")
    p.add_argument("-m", "--configuration", default="3d_fullres", help="plans configuration (default 3d_fullres)")
    p.add_argument("-f", "--folds", nargs="+", type=_fold, default=None,
                   help="folds to ensemble, e.g. 0 1 2 3 4 or all (default: every fold folder present)")
    p.add_argument("-chk", "--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"checkpoint name in each fold folder (default {DEFAULT_CHECKPOINT}; e.g. model_best)")
    p.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER,
                   help=f"plans identifier (default {DEFAULT_PLANS_IDENTIFIER})")
    step = p.add_mutually_exclusive_group()
    step.add_argument("--step_size", type=float, default=0.5,
                      help="window step as a fraction of the patch (default 0.5)")
    step.add_argument("--overlap", type=float, default=None, help="window overlap = 1 - step_size (MONAI style)")
    p.add_argument("--sw_batch_size", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--disable_tta", action="store_true", help="no test-time mirroring (8x faster)")
    p.add_argument("--mirror_axes", type=int, nargs="+", choices=(0, 1, 2), default=[0, 1, 2],
                   help="axes (z y x of the plans) mirrored for test-time augmentation (default 0 1 2)")
    p.add_argument("--save_probabilities", action="store_true",
                   help="also write <case_id>.npz (probabilities) and <case_id>.json (properties)")
    p.add_argument("--no_postprocessing", action="store_true",
                   help=f"do not apply the trainer folder's {POSTPROCESSING_FILE} (largest-component rule decided "
                        "by unetr_pp_evaluate --cv); default: applied when the file exists")
    p.add_argument("--label_map", metavar="PRED:REF,...",
                   help="write labels mapped onto another dataset's ids, e.g. '3:1' (unmapped labels -> background)")
    p.add_argument("--overwrite", action="store_true", help="predict cases whose output already exists")
    p.add_argument("--preview", action="store_true",
                   help="also draw <OUT>/preview/<case_id>.png: the prediction's contours on three slices of the "
                        "image through the middle of the predicted foreground")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default cuda when available)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="runs the network forward: torch (default) or onnxruntime (each fold exported to ONNX once, "
                        "cached as fold_<k>/<checkpoint>.onnx; needs the deploy extra)")
    p.add_argument("--accumulate", choices=("auto", "device", "cpu"), default="auto",
                   help="where blended logits are kept: auto = on the device when it has room (default)")
    p.add_argument("-npp", "--num_processes_preprocessing", type=int, default=2,
                   help="processes preprocessing the next cases (0 = in the main process; default 2)")
    p.add_argument("-nps", "--num_processes_export", type=int, default=2,
                   help="processes exporting finished cases (0 = in the main process; default 2)")
    p.add_argument("--dask", metavar="ADDRESS", help="run per-case work on this Dask scheduler, e.g. tcp://host:8786 "
                     "(needs pip install \"unetr_pp[dask]\"; workers need unetr_pp and the same data paths)")
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `unetr_pp_predict` (keeps freed tensor memory for reuse, see utilities/memory.py)."""
    args = build_parser().parse_args(argv)
    with dask_runner(args.dask):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command on parsed arguments."""
    keep_freed_memory()
    step_size = 1.0 - args.overlap if args.overlap is not None else args.step_size
    task = resolve_task(args.task, [results_folder() / args.configuration])
    folder = trained_model_folder(task, args.trainer, args.configuration, args.plans_identifier)
    rule = folder / POSTPROCESSING_FILE
    steps = read_postprocessing(rule) if rule.is_file() and not args.no_postprocessing else ()
    options = PredictionOptions(
        step_size=step_size, sw_batch_size=args.sw_batch_size,
        mirror_axes=() if args.disable_tta else tuple(args.mirror_axes), accumulate=args.accumulate,
        save_probabilities=args.save_probabilities, overwrite=args.overwrite,
        num_processes_preprocessing=args.num_processes_preprocessing, num_processes_export=args.num_processes_export,
        postprocessing=steps, label_map=parse_label_map(args.label_map) if args.label_map else None,
    )
    if args.backend == "onnxruntime":
        require_onnxruntime()
    model = load_trained_model(folder, args.folds, args.checkpoint, args.device)
    if args.backend == "onnxruntime":
        model = onnxruntime_model(model, args.checkpoint, args.device)
    tta = "off" if not options.mirror_axes else f"axes {list(options.mirror_axes)}"
    backend = args.backend if args.backend == "torch" else f"onnxruntime ({model.networks[0].providers[0]})"
    print(f"{model.network_name} from {folder}, folds {' '.join(model.folds)}, step {step_size:g}, TTA {tta}, "
          f"device {args.device}, backend {backend}")
    if rule.is_file():
        print(f"postprocessing ({rule}): " + ("skipped (--no_postprocessing)" if args.no_postprocessing else
              "; ".join(f"largest component of {list(ids)}" for ids in steps) or "none (no step improved the CV)"))
    report = predict_folder(args.input, args.output, model, options, args.device)
    print(f"wrote {len(report.written)} case(s) to {args.output}", end="")
    if report.skipped:
        print(f"; skipped {len(report.skipped)} with existing output (use --overwrite)", end="")
    print()
    if args.preview:
        done = sorted(report.written + report.skipped)
        channels = model.config.num_input_channels
        folder = write_previews(args.input, args.output, done, model.plans, channels)
        print(f"previews: {folder}/<case_id>.png")
    if report.failed:
        raise problems_error(f"prediction failed for {len(report.failed)} case(s)",
                             [f"{case_id}: {reason}" for case_id, reason in report.failed.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
