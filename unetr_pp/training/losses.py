"""Losses of the nnU-Net v1 / UNETR++ recipe: soft Dice + CE (labels), soft Dice + BCE (regions), deep
supervision weighting, and the hard TP/FP/FN counts behind the validation pseudo-Dice."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

SMOOTH = 1e-5


def soft_dice(probabilities: torch.Tensor, onehot: torch.Tensor, batch_dice: bool = False,
              do_bg: bool = False, smooth: float = SMOOTH) -> torch.Tensor:
    """Mean soft Dice of (B, K, *S) probabilities vs (B, K, *S) one-hot/region masks (nnU-Net v1 SoftDiceLoss)."""
    axes = [0] + list(range(2, probabilities.ndim)) if batch_dice else list(range(2, probabilities.ndim))
    tp = (probabilities * onehot).sum(axes)
    fp = (probabilities * (1 - onehot)).sum(axes)
    fn = ((1 - probabilities) * onehot).sum(axes)
    dice = (2 * tp + smooth) / (2 * tp + fp + fn + smooth + 1e-8)
    if not do_bg:
        dice = dice[1:] if batch_dice else dice[:, 1:]
    return dice.mean()


class DiceCELoss(nn.Module):
    """Soft Dice (softmax, background excluded) + cross-entropy; logits (B, K, *S), target int64 (B, 1, *S)."""

    def __init__(self, batch_dice: bool = False, smooth: float = SMOOTH) -> None:
        super().__init__()
        self.batch_dice, self.smooth = batch_dice, smooth
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss = CE - Dice (nnU-Net v1 DC_and_CE_loss, weights 1/1)."""
        labels = target[:, 0].long()
        onehot = torch.zeros_like(logits).scatter_(1, labels[:, None], 1.0)
        dice = soft_dice(torch.softmax(logits.float(), 1), onehot, self.batch_dice, False, self.smooth)
        return self.ce(logits.float(), labels) - dice


class DiceBCELoss(nn.Module):
    """Region training: soft Dice on sigmoid (all regions) + BCE; logits and target float (B, R, *S)."""

    def __init__(self, batch_dice: bool = False, smooth: float = SMOOTH) -> None:
        super().__init__()
        self.batch_dice, self.smooth = batch_dice, smooth
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss = BCE - Dice (nnU-Net v1 DC_and_BCE_loss; every region is foreground)."""
        target = target.float()
        dice = soft_dice(torch.sigmoid(logits.float()), target, self.batch_dice, True, self.smooth)
        return self.bce(logits.float(), target) - dice


DDP_MASKED_WEIGHT = 1e-6


def deep_supervision_weights(n_outputs: int, mask_lowest: bool = False, ddp: bool = False) -> list[float]:
    """1/2^i for each output, normalised to sum 1 (3 outputs -> [0.571, 0.286, 0.143]).

    `mask_lowest`: nnU-Net's rule, the lowest-resolution output gets weight 0 (5 outputs ->
    [0.533, 0.267, 0.133, 0.067, 0]); the UNETR++ trainers leave it out. Under DDP it gets 1e-6 instead,
    as nnU-Net v2 does (nnUNetTrainer._build_loss): DDP refuses parameters that receive no gradient.
    """
    raw = [1.0 / 2 ** i for i in range(n_outputs)]
    if mask_lowest and n_outputs > 1:
        raw[-1] = DDP_MASKED_WEIGHT if ddp else 0.0
    return [w / sum(raw) for w in raw]


def use_batch_dice(configuration: str, configurations: Sequence[str]) -> bool:
    """nnU-Net v1 `default_configuration`: batch Dice for 2d, or when the plans have a 3d_lowres stage
    (more than one stage), never for 3d_lowres itself."""
    return configuration != "3d_lowres" and (configuration == "2d" or "3d_lowres" in configurations)


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of `loss` over (outputs, targets) pairs, full resolution first."""

    def __init__(self, loss: nn.Module, n_outputs: int, mask_lowest: bool = False, ddp: bool = False) -> None:
        super().__init__()
        self.loss = loss
        self.weights = deep_supervision_weights(n_outputs, mask_lowest, ddp)

    def forward(self, outputs: Sequence[torch.Tensor] | torch.Tensor,
                targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """outputs: list of (B, K, *S_i) logits (or one tensor), targets: matching list of (B, 1|R, *S_i)."""
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, targets[0])
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} network outputs but {len(targets)} deep supervision targets")
        return sum(w * self.loss(o, t) for w, o, t in zip(self.weights, outputs, targets) if w > 0)


def hard_counts(logits: torch.Tensor, target: torch.Tensor, regions: bool) -> torch.Tensor:
    """(3, K') int64 TP/FP/FN summed over batch and space per foreground class (labels) or region (sigmoid > 0.5)."""
    with torch.no_grad():
        if regions:
            pred = torch.sigmoid(logits.float()) > 0.5
            ref = target > 0.5
        else:
            k = logits.shape[1]
            classes = torch.arange(1, k, device=logits.device).view(1, -1, *([1] * (logits.ndim - 2)))
            pred = logits.argmax(1, keepdim=True) == classes
            ref = target.long() == classes
        axes = [0] + list(range(2, logits.ndim))
        tp = (pred & ref).sum(axes)
        fp = (pred & ~ref).sum(axes)
        fn = (~pred & ref).sum(axes)
        return torch.stack([tp, fp, fn]).long()


def pseudo_dice(counts: torch.Tensor) -> tuple[float, list[float]]:
    """Global Dice per class from summed (3, K') TP/FP/FN; mean over classes whose Dice is defined (nnU-Net v1)."""
    tp, fp, fn = (counts[i].double() for i in range(3))
    denominator = 2 * tp + fp + fn
    per_class = [float(2 * t / d) if d > 0 else float("nan") for t, d in zip(tp, denominator)]
    defined = [d for d in per_class if d == d]
    return (sum(defined) / len(defined) if defined else float("nan")), per_class
