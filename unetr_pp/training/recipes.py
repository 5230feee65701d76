"""Training recipes as data: the common nnU-Net v1 / UNETR++ recipe and each seed's own (`--recipe nnunet|seed`).

A recipe sets what the trainer base's hooks use: optimizer, learning rate, schedule, mixed precision, loss,
deep supervision, crops per volume and foreground ratio, and which augmentation runs. The MONAI seeds'
intensity window and target spacing are recorded here and built with MONAI's own transforms in
`monai_recipe.py`. Values were read from the files named in `source` (docs/training.md lists them).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from unetr_pp.utilities.errors import UnetrPPError

RECIPE_CHOICES = ("nnunet", "seed")
SCHEDULES = ("poly", "warmup_cosine", "constant")
AUGMENTATIONS = ("nnunet", "monai_btcv", "uxnet")
SEED_FOLDER_SUFFIX = "-seed"


@dataclass(frozen=True)
class IntensityWindow:
    """MONAI `ScaleIntensityRanged(a_min, a_max, b_min, b_max, clip=True)` and `Spacingd(pixdim)` (x, y, z)."""

    a_min: float
    a_max: float
    b_min: float = 0.0
    b_max: float = 1.0
    pixdim_xyz: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class Recipe:
    """One training recipe; `source` names the seed file (and commit) its values come from."""

    name: str
    source: str
    optimizer: str = "sgd"
    lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    schedule: str = "poly"
    warmup_epochs: int = 0
    amp: bool = True
    grad_clip: float | None = 12.0
    deep_supervision: bool = True
    loss: str = "nnunet"
    squared_pred: bool = False
    smooth_nr: float = 1e-5
    smooth_dr: float = 1e-5
    crops_per_volume: int | None = None
    oversample_foreground_percent: float = 0.33
    augmentation: str = "nnunet"
    roi_size: tuple[int, int, int] | None = None
    infer_overlap: float = 0.5
    windows: Mapping[str, IntensityWindow] = field(default_factory=dict)
    budget: str = "1000 epochs x 250 iterations"


NNUNET = Recipe(
    name="nnunet", source="MIC-DKFZ/nnUNet v1 nnunet/training/network_training/nnUNetTrainerV2.py "
                          "(= Amshaker/unetr_plus_plus unetr_pp/training/network_training/unetr_pp_trainer_*.py)")

UNETR_PP = replace(NNUNET, name="unetr_pp", amp=False,
                   source="Amshaker/unetr_plus_plus unetr_pp/run/run_training.py (--fp32 store_true, default True) "
                          "+ unetr_pp_trainer_*.py (nnUNetTrainerV2 recipe, no deep-supervision mask)")

MONAI_BTCV_WINDOW = {"btcv": IntensityWindow(-175.0, 250.0, 0.0, 1.0, (1.5, 1.5, 2.0))}

UNETR_BTCV = Recipe(
    name="unetr_btcv",
    source="Project-MONAI/research-contributions UNETR/BTCV/main.py @76e46fc + utils/data_utils.py @805a793 "
           "+ optimizers/lr_scheduler.py",
    optimizer="adamw", lr=1e-4, weight_decay=1e-5, schedule="warmup_cosine", warmup_epochs=50, amp=True,
    grad_clip=None, deep_supervision=False, loss="monai", squared_pred=True, smooth_nr=0.0, smooth_dr=1e-6,
    crops_per_volume=4, oversample_foreground_percent=0.5, augmentation="monai_btcv", roi_size=(96, 96, 96),
    infer_overlap=0.5, windows=MONAI_BTCV_WINDOW, budget="5000 epochs (--max_epochs), validation every 100")

SWIN_UNETR_BTCV = replace(
    UNETR_BTCV, name="swin_unetr_btcv",
    source="Project-MONAI/research-contributions SwinUNETR/BTCV/main.py @7ee663e + utils/data_utils.py @683de59 "
           "+ trainer.py @38d76f2 (as UNETR/BTCV, but DiceCELoss(to_onehot_y, softmax) with MONAI's default "
           "smoothing unless --squared_dice; feature_size 48)",
    squared_pred=False, smooth_nr=1e-5, smooth_dr=1e-5)

UXNET = Recipe(
    name="uxnet", source="MASILab/3DUX-Net main_train.py @9ff8779 + load_datasets_transforms.py @b83f3be",
    optimizer="adamw", lr=1e-4, weight_decay=1e-2, schedule="constant", amp=False, grad_clip=None,
    deep_supervision=False, loss="monai", squared_pred=False, smooth_nr=1e-5, smooth_dr=1e-5,
    crops_per_volume=2, oversample_foreground_percent=0.5, augmentation="uxnet", roi_size=(96, 96, 96),
    infer_overlap=0.5,
    windows={"flare": IntensityWindow(-125.0, 275.0, 0.0, 1.0, (1.0, 1.0, 1.2)),
             "amos": IntensityWindow(-125.0, 275.0, 0.0, 1.0, (1.5, 1.5, 2.0)),
             "feta": IntensityWindow(0.0, 1000.0, 0.0, 1.0, None)},
    budget="40000 iterations (--max_iter), validation every 500 (--eval_step)")

RECIPES: dict[str, Recipe] = {r.name: r for r in (NNUNET, UNETR_PP, UNETR_BTCV, SWIN_UNETR_BTCV, UXNET)}


def check_schedule(schedule: str) -> str:
    """`schedule` if known, else one clear error naming the option and the allowed values."""
    if schedule not in SCHEDULES:
        raise UnetrPPError(f"--lr_schedule {schedule!r}: allowed values are {', '.join(SCHEDULES)}")
    return schedule


def check_recipe_choice(choice: str) -> str:
    """`choice` if it is nnunet or seed, else one clear error naming the option and the allowed values."""
    if choice not in RECIPE_CHOICES:
        raise UnetrPPError(f"--recipe {choice!r}: allowed values are {', '.join(RECIPE_CHOICES)}")
    return choice


def selected_recipe_name(choice: str, seed_recipe: str | None) -> str:
    """Name of the recipe `--recipe choice` selects for a trainer with `seed_recipe` (fit to the task not checked)."""
    return seed_recipe if check_recipe_choice(choice) == "seed" and seed_recipe else NNUNET.name


def results_trainer_name(trainer: str, recipe_name: str) -> str:
    """Trainer part of the results folder: `<trainer>` under the common recipe, `<trainer>-seed` under a seed's own."""
    return trainer if recipe_name == NNUNET.name else f"{trainer}{SEED_FOLDER_SUFFIX}"


def resolve_recipe(choice: str, seed_recipe: str | None, trainer: str, regions: bool) -> Recipe:
    """The recipe a trainer trains with for `--recipe nnunet|seed`; a seed recipe that does not fit -> error."""
    if check_recipe_choice(choice) == "nnunet":
        return NNUNET
    if seed_recipe is None:
        raise UnetrPPError(f"--recipe seed: trainer {trainer} has no seed recipe; allowed values for it: nnunet")
    recipe = RECIPES[seed_recipe]
    if regions and recipe.loss == "monai":
        raise UnetrPPError(f"--recipe seed: the {recipe.name} recipe trains softmax labels (MONAI DiceCELoss), "
                           f"but this task has regions; allowed values for it: nnunet")
    return recipe


def comparison_recipe(choice: str, seed_recipe: str | None, trainer: str, regions: bool) -> tuple[Recipe, str | None]:
    """(recipe, why not the seed's) for `unetr_pp_compare --recipe`: the seed's recipe where it fits the task,
    else the common nnunet recipe and resolve_recipe's reason."""
    try:
        return resolve_recipe(choice, seed_recipe, trainer, regions), None
    except UnetrPPError as err:
        if choice != "seed":
            raise
        return NNUNET, str(err).removeprefix("--recipe seed: ")
