"""One fold from start to end: where its data and results live, training, and the final validation
(prediction of the validation cases in their original geometry, then evaluation)."""
from __future__ import annotations

from unetr_pp.experiment.validation import validate_fold
from unetr_pp.io.plans import Plans
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, preprocessed_folder, resolve_task, results_folder
from unetr_pp.training import distributed
from unetr_pp.training.trainer import FoldSetup, Trainer, fmt_metric
from unetr_pp.utilities.errors import UnetrPPError


def fold_setup(configuration: str, task_arg: str, fold: str, trainer: str, plans_identifier: str) -> FoldSetup:
    """Resolve the task and read the plans; clear errors when preprocessing has not been run.

    `trainer` is the trainer part of the results folder name (`results_trainer_name`: `<name>-seed` under a seed
    recipe)."""
    task = resolve_task(task_arg)
    if fold != "all" and not fold.isdigit():
        raise UnetrPPError(f"fold must be a number or 'all', got {fold!r}")
    task_folder = preprocessed_folder() / task
    plans_path = task_folder / f"{plans_identifier}.json"
    if not plans_path.is_file():
        raise UnetrPPError(f"{plans_path}: plans not found; run unetr_pp_plan_and_preprocess -t {task} first"
                           + (" (or check -p)" if plans_identifier != DEFAULT_PLANS_IDENTIFIER else ""))
    plans = Plans.load(plans_path)
    data_folder = task_folder / plans.configuration(configuration).data_identifier
    if not data_folder.is_dir():
        raise UnetrPPError(f"{data_folder}: preprocessed data not found; run unetr_pp_plan_and_preprocess -t {task}")
    output = results_folder() / configuration / task / f"{trainer}__{plans_identifier}" / f"fold_{fold}"
    return FoldSetup(task, fold, configuration, plans_identifier, plans, task_folder, data_folder, output)


def final_validation(trainer: Trainer) -> dict:
    """Predict, export and evaluate the fold's validation cases (TTA mirroring unless --val_disable_tta)."""
    summary = validate_fold(trainer.network, trainer.plans, trainer.setup.configuration, trainer.setup.data_folder,
                            trainer.val_ids, trainer.setup.task, trainer.output_folder, trainer.device,
                            not trainer.options.val_disable_tta, trainer.log)
    trainer.log(f"validation mean foreground Dice {fmt_metric(summary['foreground_mean']['Dice'])}; "
                f"training curves: {trainer.output_folder / 'progress.png'}")
    return summary


def train_fold(trainer: Trainer) -> None:
    """Initialize and train the fold, free the training state, then validate it on the main process; data loader
    workers always stop."""
    try:
        trainer.initialize()
        trainer.run_training()
    finally:
        trainer.close()
    trainer.release_training_state()
    if trainer.dist.is_main:
        final_validation(trainer)
    distributed.cleanup(trainer.dist)


def validate_trained_fold(trainer: Trainer) -> dict:
    """`--val`: the final validation with the weights of model_final_checkpoint, no training."""
    trainer.load_final_for_validation()
    return final_validation(trainer)
