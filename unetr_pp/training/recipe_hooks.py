"""What a recipe builds for the trainer base's hooks: the loss and the per-batch MONAI augmentation; whether the
plans hold the seed's preprocessing."""
from __future__ import annotations

from typing import Callable, Sequence

from unetr_pp.io.plans import WINDOW_SCHEME, Configuration
from unetr_pp.training.losses import DeepSupervisionLoss, DiceBCELoss, DiceCELoss, use_batch_dice
from unetr_pp.training.recipes import Recipe


def recipe_loss(recipe: Recipe, regions: bool, configuration: str, configurations: Sequence[str], n_outputs: int,
                mask_lowest: bool, ddp: bool = False) -> DeepSupervisionLoss:
    """nnU-Net Dice+CE / Dice+BCE (batch Dice by nnU-Net v1's rule) or MONAI DiceCELoss, per DS output."""
    if recipe.loss == "monai":
        from unetr_pp.training.monai_recipe import monai_loss
        return DeepSupervisionLoss(monai_loss(recipe), n_outputs)
    batch_dice = use_batch_dice(configuration, configurations)
    base = DiceBCELoss(batch_dice) if regions else DiceCELoss(batch_dice)
    return DeepSupervisionLoss(base, n_outputs, mask_lowest, ddp)


def monai_augmenter(recipe: Recipe, seed: int, rank: int,
                    patch_size: Sequence[int]) -> Callable[[dict], dict] | None:
    """The MONAI patch augmentation of a seed recipe for (z, y, x) patches (None: nnU-Net's runs in the loader)."""
    if recipe.augmentation == "nnunet":
        return None
    from unetr_pp.training.monai_recipe import batch_augmenter
    return batch_augmenter(recipe, seed + 104729 * rank, patch_size)


def seed_preprocessing_warning(recipe: Recipe, config: Configuration) -> str | None:
    """One warning line when a recipe with intensity windows trains on plans without one of them (None otherwise);
    the recipe's window names are the presets that give its preprocessing (`--preset btcv`, ...)."""
    if not recipe.windows:
        return None
    windows = config.intensity_windows
    for window in recipe.windows.values():
        wanted = {"a_min": window.a_min, "a_max": window.a_max, "b_min": window.b_min, "b_max": window.b_max}
        if all(s == WINDOW_SCHEME for s in config.normalization_schemes) and all(
                windows.get(str(c)) == wanted for c in range(len(config.normalization_schemes))):
            return None
    presets = " / ".join(f"--preset {name}" for name in recipe.windows)
    return (f"WARNING: --recipe seed: the plans normalize with {'/'.join(sorted(set(config.normalization_schemes)))}, "
            f"not the {recipe.name} recipe's fixed intensity window; unetr_pp_plan_and_preprocess -t TASK {presets} "
            f"gives the seed's preprocessing (window and spacing)")
