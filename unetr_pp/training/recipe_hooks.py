"""What a recipe builds for the trainer base's hooks: the loss and the per-batch MONAI augmentation."""
from __future__ import annotations

from typing import Callable, Sequence


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


def monai_augmenter(recipe: Recipe, seed: int, rank: int) -> Callable[[dict], dict] | None:
    """The MONAI patch augmentation of a seed recipe (None: nnU-Net's runs in the loader)."""
    if recipe.augmentation == "nnunet":
        return None
    from unetr_pp.training.monai_recipe import batch_augmenter
    return batch_augmenter(recipe, seed + 104729 * rank)
