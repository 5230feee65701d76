"""`unetr_pp_export`: write trained folds as ONNX or TorchScript with the plans and an input/output description."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from unetr_pp.cli.predict import _fold
from unetr_pp.inference.deploy import (
    DEFAULT_OPSET,
    FORMATS,
    IO_FILE,
    PLANS_FILE,
    export_trained_model,
)
from unetr_pp.inference.runtime import require_onnxruntime
from unetr_pp.inference.models import DEFAULT_CHECKPOINT, load_trained_model, trained_model_folder
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, resolve_task, results_folder
from unetr_pp.utilities.errors import cli_main


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of `unetr_pp_export`."""
    p = argparse.ArgumentParser(
        prog="unetr_pp_export",
        description=f"Export trained folds as ONNX or TorchScript: <OUT>/fold_<k>/model.onnx|model.pt, "
                    f"<OUT>/{PLANS_FILE} and <OUT>/{IO_FILE} (input/output tensors, labels, preprocessing, "
                    "sliding-window settings). Batch axis dynamic, spatial axes fixed to the plans' patch size.",
    )
    p.add_argument("-t", "--task", required=True, help="task id or name, e.g. 2 or Task002_Synapse")
    p.add_argument("-tr", "--trainer", required=True, help="trainer name used for training, e.g. unetr_pp_trainer")
    p.add_argument("-f", "--folds", nargs="+", type=_fold, default=None,
                   help="folds to export, e.g. 0 1 2 3 4 or all (default: every fold folder present)")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime, TensorRT, ...) or "
                                                                   "torchscript (torch.jit.load, LibTorch)")
    p.add_argument("-o", "--output", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("-c", "-m", "--configuration", default="3d_fullres", help="plans configuration (default 3d_fullres)")
    p.add_argument("-chk", "--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"checkpoint name in each fold folder (default {DEFAULT_CHECKPOINT}; e.g. model_best)")
    p.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER,
                   help=f"plans identifier (default {DEFAULT_PLANS_IDENTIFIER})")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}; 3D DeformUX-Net's 5D grid_sample needs 20)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty output folder")
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `unetr_pp_export`."""
    args = build_parser().parse_args(argv)
    if args.format == "onnx":
        require_onnxruntime()
    task = resolve_task(args.task, [results_folder() / args.configuration])
    folder = trained_model_folder(task, args.trainer, args.configuration, args.plans_identifier)
    model = load_trained_model(folder, args.folds, args.checkpoint, "cpu")
    description = export_trained_model(model, args.output, args.format, args.checkpoint, args.opset, args.overwrite)
    worst = max(description["max_abs_difference_to_torch"].values())
    print(f"exported {model.network_name} folds {' '.join(model.folds)} as {args.format} to {args.output} "
          f"(input {description['input']['shape']}; max |export - torch| {worst:.1e} on a random batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
