"""`unetr_pp_import_model`: turn a released checkpoint of a seed into a trained-model folder of ours."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, resolve_task
from unetr_pp.training.importing.keymaps import SOURCES
from unetr_pp.training.importing.released import ImportOptions, import_model
from unetr_pp.utilities.errors import cli_main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unetr_pp_import_model",
        description="Import a released checkpoint (UNETR++ .model [+ .model.pkl], 3D UX-Net / RepUX-Net / "
                    "DeformUX-Net .pth, UNETR / SwinUNETR .pth or TorchScript .pt) as fold_<k>/<name>.model + "
                    ".model.json under $RESULTS_FOLDER, usable by unetr_pp_predict, the evaluation scripts and "
                    "unetr_pp_train -c / --pretrained_weights. Only import files you trust: they are unpickled.")
    p.add_argument("checkpoint", type=Path, help="the released checkpoint file")
    p.add_argument("-t", "--task", required=True, help="task id or name, e.g. 2 or Task002_Synapse")
    p.add_argument("-tr", "--trainer", required=True,
                   help="trainer name for the model folder, e.g. unetr_pp_trainer_synapse")
    p.add_argument("-f", "--fold", required=True, help="fold the weights stand for (0-4 or all)")
    p.add_argument("-c", "--configuration", default="3d_fullres", help="plans configuration (only 3d_fullres)")
    p.add_argument("--preset", default=None,
                   help="UNETR++ without .model.pkl: synapse|acdc|lung|tumor (plans from the task's planned plans); "
                        "UX-Net family: flare|amos|feta; UNETR/SwinUNETR: btcv (default: told from the class count)")
    p.add_argument("--source", choices=SOURCES, default=None, help="architecture of the file (default: from its keys)")
    p.add_argument("--name", default="model_final_checkpoint", help="checkpoint name to write (default %(default)s)")
    p.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER, help="plans identifier of the folder")
    p.add_argument("--fold_reparam", action="store_true",
                   help="RepUX-Net: fold the Bidirectional Fusion Mask and BatchNorm into plain kernels on import")
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `unetr_pp_import_model`."""
    args = _parser().parse_args(argv)
    fold = str(args.fold)
    if fold != "all" and not fold.isdigit():
        _parser().error(f"-f {fold}: a fold is 0-4 or all")
    options = ImportOptions(checkpoint=args.checkpoint, task=resolve_task(args.task), trainer=args.trainer, fold=fold,
                            configuration=args.configuration, preset=args.preset, source=args.source,
                            name=args.name, plans_identifier=args.plans_identifier, fold_reparam=args.fold_reparam)
    target, report = import_model(options)
    print(f"imported {report['source']} checkpoint {args.checkpoint} ({report['tensors']} tensors, "
          f"{report['values']:,} values) -> {target / (args.name + '.model')}")
    print(f"network {report['network']} {json.dumps(report['network_kwargs'])}; plans from {report['plans_from']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
