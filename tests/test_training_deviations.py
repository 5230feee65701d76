"""The six deviations of issue 15 against the nnU-Net / UNETR++ reference rules (values re-derived by hand)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from unetr_pp.inference.sliding_window import SlidingWindowSettings, gaussian_importance_map, predict_probabilities
from unetr_pp.training.data.sampling import do_oversample
from unetr_pp.training.distributed import DistInfo, rank_batch_size, rank_oversample_percent
from unetr_pp.training.losses import DeepSupervisionLoss, DiceCELoss, deep_supervision_weights, use_batch_dice
from unetr_pp.training.trainer import use_amp
from unetr_pp.training.trainers import get_trainer_class


def v1_batch_dice(network: str, n_stages: int) -> bool:
    """nnU-Net v1 run/default_configuration.py, re-created."""
    return (network == "2d" or n_stages > 1) and not network == "3d_lowres"


@pytest.mark.parametrize("configuration, planned", [
    ("3d_fullres", ["3d_fullres"]), ("3d_fullres", ["3d_fullres", "3d_lowres"]), ("3d_lowres", ["3d_fullres", "3d_lowres"]),
    ("2d", ["2d", "3d_fullres"]), ("3d_cascade_fullres", ["3d_fullres", "3d_lowres", "3d_cascade_fullres"])])
def test_batch_dice_follows_nnunet_v1(configuration, planned):
    stages = 2 if "3d_lowres" in planned else 1
    assert use_batch_dice(configuration, planned) == v1_batch_dice(configuration, stages)


def test_batch_dice_pools_the_batch():
    # sample 0 all foreground predicted right, sample 1 no foreground but predicted foreground in half
    target = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]]).view(2, 1, 4, 1, 1)
    p = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    logits = torch.log(torch.stack([1 - p + 1e-12, p + 1e-12], 1)).view(2, 2, 4, 1, 1)
    ce = torch.nn.functional.cross_entropy(logits.float(), target[:, 0])
    per_sample = (1.0 + 1e-5 / (2 + 1e-5 + 1e-8)) / 2  # sample 0 Dice 1, sample 1 Dice 1e-5/(2+1e-5)
    assert float(DiceCELoss(False)(logits, target)) == pytest.approx(float(ce) - per_sample, abs=1e-4)
    pooled = (2 * 4 + 1e-5) / (2 * 4 + 2 + 1e-5 + 1e-8)
    assert float(DiceCELoss(True)(logits, target)) == pytest.approx(float(ce) - pooled, abs=1e-4)


def test_ddp_ranks_share_the_global_oversampling():
    # global batch 2 on 2 ranks: rank 1 holds global sample 1, which one process would force to foreground
    shares = [rank_oversample_percent(2, 0.33, DistInfo(r, 2)) for r in range(2)]
    assert shares[0] == 0.0
    assert do_oversample(0, 1, shares[1]) and not do_oversample(0, 1, shares[0])
    for batch, world in [(2, 2), (4, 2), (6, 3), (8, 4), (12, 4), (5, 2), (3, 3)]:
        single = [do_oversample(j, batch, 0.33) for j in range(batch)]
        split = []
        for r in range(world):
            info = DistInfo(r, world)
            n = rank_batch_size(batch, info)
            split += [do_oversample(j, n, rank_oversample_percent(batch, 0.33, info)) for j in range(n)]
        assert sum(split) == sum(single), (batch, world)
    assert rank_oversample_percent(2, 0.33, DistInfo()) == 0.33


def test_nnunet_trainer_masks_the_lowest_deep_supervision_output():
    assert [round(w, 3) for w in deep_supervision_weights(5, mask_lowest=True)] == [0.533, 0.267, 0.133, 0.067, 0.0]
    # under DDP nnU-Net v2 keeps a tiny weight so the lowest head still receives a gradient
    ddp = deep_supervision_weights(5, mask_lowest=True, ddp=True)
    assert 0 < ddp[-1] < 1e-6 and [round(w, 3) for w in ddp[:4]] == [0.533, 0.267, 0.133, 0.067]
    assert get_trainer_class("nnunet_trainer").deep_supervision_mask_lowest
    assert not get_trainer_class("unetr_pp_trainer").deep_supervision_mask_lowest
    loss = DeepSupervisionLoss(DiceCELoss(), 2, mask_lowest=True)
    full = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1, 1)
    outs = [torch.randn(1, 2, 4, 1, 1), torch.randn(1, 2, 2, 1, 1)]
    assert float(loss(outs, [full, torch.zeros(1, 1, 2, 1, 1).long()])) == pytest.approx(
        float(DiceCELoss()(outs[0], full)), abs=1e-6)


def test_mixed_precision_defaults_follow_each_seed():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    defaults = {name: get_trainer_class(name).amp_default for name in
                ("unetr_pp_trainer", "unetr_pp_trainer_synapse", "nnunet_trainer", "unetr_trainer",
                 "swin_unetr_trainer", "uxnet_trainer")}
    assert defaults == {"unetr_pp_trainer": False, "unetr_pp_trainer_synapse": False, "nnunet_trainer": True,
                        "unetr_trainer": True, "swin_unetr_trainer": True, "uxnet_trainer": True}
    assert not use_amp(cuda, None, defaults["unetr_pp_trainer"]) and use_amp(cuda, None, True)
    assert use_amp(cuda, True, False) and not use_amp(cuda, False, True)
    assert not use_amp(cpu, True, True)


@pytest.mark.parametrize("patch", [(8, 16, 12), (9, 10, 17)])
def test_gaussian_centre_is_n_half_as_nnunet(patch):
    g = gaussian_importance_map(patch)
    assert np.unravel_index(g.argmax(), g.shape) == tuple(n // 2 for n in patch)
    delta = np.zeros(patch)
    delta[tuple(n // 2 for n in patch)] = 1  # nnU-Net v2 compute_gaussian, re-created
    ref = gaussian_filter(delta, [n * 0.125 for n in patch], 0, mode="constant", cval=0)
    ref /= ref.max()
    keep = ref > 1e-3
    np.testing.assert_allclose(g[keep], ref[keep], rtol=2e-3, atol=1e-4)


def test_fold_ensemble_softmaxes_the_mean_logits():
    nets = [torch.nn.Conv3d(1, 3, 1), torch.nn.Conv3d(1, 3, 1)]
    torch.manual_seed(0)
    for net in nets:
        torch.nn.init.normal_(net.weight, std=3.0)
    data = np.random.default_rng(0).normal(size=(1, 8, 8, 8)).astype(np.float32)
    probs = predict_probabilities(nets, data, SlidingWindowSettings((8, 8, 8), mirror_axes=()))
    with torch.no_grad():
        logits = [n(torch.from_numpy(data)[None])[0] for n in nets]
    expected = torch.softmax((logits[0] + logits[1]) / 2, 0).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-5)
    mean_of_softmax = np.mean([torch.softmax(x, 0).numpy() for x in logits], axis=0)
    assert np.abs(probs - mean_of_softmax).max() > 1e-3
