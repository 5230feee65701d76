"""unetr_pp_train: train one fold (or `all`) of a task.

DDP: `torchrun --nproc_per_node N -m unetr_pp.cli.train ...`.
"""
from __future__ import annotations

import argparse
import signal
from pathlib import Path

import torch

from unetr_pp.experiment.fold_run import fold_setup, train_fold, validate_trained_fold
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER
from unetr_pp.training.recipes import results_trainer_name, selected_recipe_name
from unetr_pp.training.trainer import TrainingOptions
from unetr_pp.training.trainers import get_trainer_class
from unetr_pp.utilities.errors import cli_main
from unetr_pp.utilities.memory import keep_freed_memory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unetr_pp_train",
        description="Train one fold with the nnU-Net/UNETR++ recipe (or the seed's own: --recipe seed); the fold "
                    "folder is $RESULTS_FOLDER/unetr_pp/<CONFIG>/<Task>/<TRAINER>__<plans_id>/fold_<FOLD>/ "
                    "(<TRAINER>-seed__<plans_id> under a seed recipe).")
    parser.add_argument("configuration", metavar="CONFIG", help="plans configuration, e.g. 3d_fullres")
    parser.add_argument("trainer", metavar="TRAINER",
                        help="e.g. unetr_pp_trainer, nnunet_trainer, unetr_pp_trainer_synapse")
    parser.add_argument("task", metavar="TASK", help="task id (2) or name (Task002_Synapse)")
    parser.add_argument("fold", metavar="FOLD", help="0-4 or all")
    parser.add_argument("-c", "--continue_training", action="store_true",
                        help="continue from the newest valid checkpoint of the fold folder")
    parser.add_argument("--val", action="store_true",
                        help="only run the final validation with model_final_checkpoint (no training)")
    parser.add_argument("-p", "--plans_identifier", default=DEFAULT_PLANS_IDENTIFIER,
                        help=f"plans identifier (default {DEFAULT_PLANS_IDENTIFIER})")
    parser.add_argument("--pretrained_weights", type=Path,
                        help="checkpoint whose shape-matching weights initialise the network")
    parser.add_argument("--epochs", type=int, default=1000, help="epochs (default 1000)")
    parser.add_argument("--iters_per_epoch", type=int, default=250, help="training iterations per epoch (default 250)")
    parser.add_argument("--val_iters", type=int, default=50, help="validation iterations per epoch (default 50)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (AMP on CUDA only; default cuda when available)")
    parser.add_argument("--val_disable_tta", action="store_true",
                        help="no mirroring in the final validation (faster on CPU)")
    parser.add_argument("--seed", type=int, help="random seed (default: random; 0 with --deterministic)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic algorithms and seeding")
    parser.add_argument("--save_every", type=int, default=1, help="write model_latest every N epochs (default 1)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                        help="sgd (shared recipe) or adamw (lr 1e-4; UNETR, SwinUNETR and UX-Net family trainers)")
    parser.add_argument("--recipe", default="nnunet",
                        help="nnunet (default: the common nnU-Net/UNETR++ recipe) or seed (the architecture's own "
                             "paper recipe; docs/training.md)")
    parser.add_argument("--lr", type=float, help="initial learning rate (default: the recipe's / optimizer's)")
    parser.add_argument("--lr_schedule", help="poly, warmup_cosine or constant (default: the recipe's; poly)")
    amp = parser.add_mutually_exclusive_group()
    amp.add_argument("--amp", dest="amp", action="store_true", default=None,
                     help="mixed precision on CUDA (default: the trainer's seed: off for UNETR++, on otherwise)")
    amp.add_argument("--no_amp", dest="amp", action="store_false", help="train in fp32")
    parser.add_argument("-npda", "--num_processes_da", type=int,
                        help="data augmentation worker processes "
                             "(default: env unetr_pp_n_proc_DA, else 2; 0 = in-process)")
    return parser


def _exit_on_sigterm(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Entry point of unetr_pp_train (SIGTERM exits cleanly; freed tensor memory is kept, utilities/memory.py)."""
    keep_freed_memory()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _run(_parser().parse_args(argv))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    options = TrainingOptions(
        epochs=args.epochs, iters_per_epoch=args.iters_per_epoch, val_iters=args.val_iters, device=args.device,
        seed=args.seed, deterministic=args.deterministic, save_every=args.save_every,
        continue_training=args.continue_training, pretrained_weights=args.pretrained_weights,
        val_disable_tta=args.val_disable_tta, optimizer=args.optimizer, num_processes=args.num_processes_da,
        amp=args.amp, lr=args.lr, lr_schedule=args.lr_schedule, recipe=args.recipe)
    trainer_class = get_trainer_class(args.trainer)
    folder_name = results_trainer_name(trainer_class.name, selected_recipe_name(args.recipe, trainer_class.seed_recipe))
    setup = fold_setup(args.configuration, args.task, args.fold, folder_name, args.plans_identifier)
    trainer = trainer_class(setup, options)
    if args.val:
        validate_trained_fold(trainer)
    else:
        train_fold(trainer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
