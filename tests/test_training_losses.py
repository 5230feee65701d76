"""Losses, deep-supervision weights, pseudo-Dice counts and the poly LR against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from unetr_pp.training.losses import (DeepSupervisionLoss, DiceBCELoss, DiceCELoss, deep_supervision_weights,
                                      hard_counts, pseudo_dice, soft_dice)
from unetr_pp.training.schedule import poly_lr


def test_soft_dice_by_hand():
    # one sample, classes 0/1, four voxels; class 1: p = [.8, .6, .2, 0], truth [1, 1, 0, 0]
    p1 = torch.tensor([0.8, 0.6, 0.2, 0.0])
    probs = torch.stack([1 - p1, p1]).view(1, 2, 4, 1, 1)
    truth = torch.tensor([1.0, 1.0, 0.0, 0.0])
    onehot = torch.stack([1 - truth, truth]).view(1, 2, 4, 1, 1)
    tp, fp, fn = 1.4, 0.2, 0.6
    expected_fg = (2 * tp + 1e-5) / (2 * tp + fp + fn + 1e-5)
    assert float(soft_dice(probs, onehot)) == pytest.approx(expected_fg, abs=1e-6)
    # with background: tp 1.8 (0.8 + 1.0), fp 0.6, fn 0.2
    expected_bg = (2 * 1.8 + 1e-5) / (2 * 1.8 + 0.6 + 0.2 + 1e-5)
    assert float(soft_dice(probs, onehot, do_bg=True)) == pytest.approx((expected_fg + expected_bg) / 2, abs=1e-6)


def test_dice_ce_and_dice_bce_at_uniform_logits():
    target = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1, 1)
    loss = DiceCELoss()(torch.zeros(1, 2, 4, 1, 1), target)
    # softmax 0.5 everywhere: CE = ln 2, foreground Dice: tp 1, fp 1, fn 1 -> 2/4
    assert float(loss) == pytest.approx(math.log(2) - 0.5, abs=1e-5)
    region = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 4, 1, 1)
    assert float(DiceBCELoss()(torch.zeros(1, 1, 4, 1, 1), region)) == pytest.approx(math.log(2) - 0.5, abs=1e-5)


def test_dice_ce_falls_for_a_correct_prediction():
    target = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1, 1)
    good = torch.tensor([[-5, -5, 5, 5], [5, 5, -5, -5]], dtype=torch.float32).view(1, 2, 4, 1, 1)
    assert float(DiceCELoss()(good, target)) < -0.98


def test_deep_supervision_weights_and_sum():
    assert deep_supervision_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert [round(w, 3) for w in deep_supervision_weights(3)] == [0.571, 0.286, 0.143]
    base = DiceCELoss()
    full_t = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1, 1)
    half_t = torch.tensor([1, 0]).view(1, 1, 2, 1, 1)
    outs = [torch.randn(1, 2, 4, 1, 1), torch.randn(1, 2, 2, 1, 1)]
    ds = DeepSupervisionLoss(base, 2)
    expected = 2 / 3 * float(base(outs[0], full_t)) + 1 / 3 * float(base(outs[1], half_t))
    assert float(ds(outs, [full_t, half_t])) == pytest.approx(expected, abs=1e-6)
    assert float(ds(outs[0], [full_t, half_t])) == pytest.approx(float(base(outs[0], full_t)), abs=1e-6)


def test_hard_counts_and_global_pseudo_dice():
    # 3 classes, 5 voxels; argmax prediction [0, 1, 1, 2, 0], truth [0, 1, 2, 2, 1]
    pred = torch.tensor([0, 1, 1, 2, 0])
    logits = torch.nn.functional.one_hot(pred, 3).T.float().view(1, 3, 5, 1, 1)
    truth = torch.tensor([0, 1, 2, 2, 1]).view(1, 1, 5, 1, 1)
    counts = hard_counts(logits, truth, regions=False)
    assert counts.tolist() == [[1, 1], [1, 0], [1, 1]]  # rows TP, FP, FN; columns classes 1, 2
    # a second batch where class 2 is absent everywhere and class 1 is perfect
    counts2 = hard_counts(torch.nn.functional.one_hot(torch.tensor([1, 0]), 3).T.float().view(1, 3, 2, 1, 1),
                          torch.tensor([1, 0]).view(1, 1, 2, 1, 1), regions=False)
    mean, per_class = pseudo_dice(counts + counts2)
    # class 1: TP 1+1, FP 1, FN 1 -> 4/6; class 2 (batch 1 only): TP 1, FP 0, FN 1 -> 2/3
    assert per_class == pytest.approx([4 / 6, 2 / 3])
    assert mean == pytest.approx(2 / 3)
    empty_mean, empty = pseudo_dice(torch.zeros(3, 2, dtype=torch.long))
    assert math.isnan(empty_mean) and all(math.isnan(v) for v in empty)


def test_region_counts_threshold_sigmoid():
    logits = torch.tensor([2.0, -2.0, 2.0, -2.0]).view(1, 1, 4, 1, 1)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 4, 1, 1)
    assert hard_counts(logits, target, regions=True).tolist() == [[1], [1], [1]]


def test_poly_lr():
    assert poly_lr(0, 1000, 1e-2) == 1e-2
    assert poly_lr(500, 1000, 1e-2) == pytest.approx(1e-2 * 0.5 ** 0.9)
    assert poly_lr(999, 1000, 1e-2) == pytest.approx(1e-2 * 0.001 ** 0.9)
