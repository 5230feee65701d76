"""Recipes against the values read from each seed's code; MONAI parts against MONAI; one CPU step per recipe."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss as MonaiDiceCELoss
from monai.transforms import Compose, CropForegroundd, ScaleIntensityRanged

from unetr_pp.cli.train import main
from unetr_pp.networks import build_network
from unetr_pp.networks.complexity import summary_plans_config
from unetr_pp.training.checkpoints import read_checkpoint
from unetr_pp.training.monai_recipe import batch_augmenter, intensity_pipeline, monai_loss
from unetr_pp.training.recipes import RECIPES, resolve_recipe
from unetr_pp.training.schedule import lr_at
from unetr_pp.training.trainers import get_trainer_class
from unetr_pp.utilities.errors import UnetrPPError

from training_tasks import fold_folder, run_args, tiny_task, tiny_template  # noqa: F401 (fixtures)


def test_recipes_hold_the_values_of_the_seed_code():
    # UNETR/BTCV main.py: --optim_name adamw, --optim_lr 1e-4, --reg_weight 1e-5, --lrschedule warmup_cosine,
    # --warmup_epochs 50, amp = not --noamp, DiceCELoss(squared_pred=True, smooth_nr=0.0, smooth_dr=1e-6),
    # --infer_overlap 0.5; data_utils.py: RandCropByPosNegLabeld(pos=1, neg=1, num_samples=4) at 96^3,
    # Spacingd(1.5, 1.5, 2.0), ScaleIntensityRanged(-175, 250, 0, 1, clip=True)
    unetr = RECIPES["unetr_btcv"]
    assert (unetr.optimizer, unetr.lr, unetr.weight_decay, unetr.schedule, unetr.warmup_epochs, unetr.amp) == (
        "adamw", 1e-4, 1e-5, "warmup_cosine", 50, True)
    assert (unetr.squared_pred, unetr.smooth_nr, unetr.smooth_dr, unetr.infer_overlap) == (True, 0.0, 1e-6, 0.5)
    assert (unetr.crops_per_volume, unetr.oversample_foreground_percent, unetr.roi_size) == (4, 0.5, (96, 96, 96))
    btcv = unetr.windows["btcv"]
    assert (btcv.a_min, btcv.a_max, btcv.b_min, btcv.b_max, btcv.pixdim_xyz) == (-175, 250, 0, 1, (1.5, 1.5, 2.0))
    assert not unetr.deep_supervision and unetr.grad_clip is None
    # SwinUNETR/BTCV main.py @7ee663e: the same argparse defaults and data_utils.py @683de59 transforms as UNETR
    # (roi 96, num_samples 4, pos 1 / neg 1, spacing 1.5x1.5x2.0, window -175..250, probabilities 0.2/0.2/0.1/0.1,
    # --infer_overlap 0.5, --feature_size 48), but DiceCELoss(to_onehot_y=True, softmax=True) unless --squared_dice:
    # squared_pred False and MONAI's default smoothing; trainer.py @38d76f2: no gradient clipping
    swin = RECIPES["swin_unetr_btcv"]
    assert (swin.optimizer, swin.lr, swin.weight_decay, swin.schedule, swin.warmup_epochs, swin.amp) == (
        "adamw", 1e-4, 1e-5, "warmup_cosine", 50, True)
    default_dice = MonaiDiceCELoss(to_onehot_y=True, softmax=True).dice
    assert (swin.squared_pred, swin.smooth_nr, swin.smooth_dr) == (
        default_dice.squared_pred, default_dice.smooth_nr, default_dice.smooth_dr) == (False, 1e-5, 1e-5)
    assert (swin.crops_per_volume, swin.oversample_foreground_percent, swin.roi_size, swin.infer_overlap) == (
        4, 0.5, (96, 96, 96), 0.5)
    assert swin.windows == unetr.windows and swin.augmentation == unetr.augmentation == "monai_btcv"
    assert swin.grad_clip is None and not swin.deep_supervision and "7ee663e" in swin.source
    swin_net = build_network("swin_unetr", summary_plans_config("swin_unetr", patch_size=[32, 32, 64], num_classes=2),
                             deep_supervision=False)
    assert swin_net.swinViT.patch_embed.proj.out_channels == 48
    # 3DUX-Net main_train.py: AdamW(lr=1e-4) with torch's default weight decay 0.01, no scheduler, no autocast,
    # --crop_sample 2, DiceCELoss(to_onehot_y=True, softmax=True); load_datasets_transforms.py windows
    ux = RECIPES["uxnet"]
    assert (ux.optimizer, ux.lr, ux.weight_decay, ux.schedule, ux.amp, ux.crops_per_volume) == (
        "adamw", 1e-4, torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults["weight_decay"],
        "constant", False, 2)
    assert {k: (w.a_min, w.a_max, w.pixdim_xyz) for k, w in ux.windows.items()} == {
        "flare": (-125, 275, (1.0, 1.0, 1.2)), "amos": (-125, 275, (1.5, 1.5, 2.0)), "feta": (0, 1000, None)}
    # UNETR++ run_training.py: --fp32 store_true default True -> no AMP; otherwise nnUNetTrainerV2
    assert not RECIPES["unetr_pp"].amp and RECIPES["unetr_pp"].lr == 1e-2 and RECIPES["unetr_pp"].schedule == "poly"
    seeds = {n: get_trainer_class(n).seed_recipe for n in ("nnunet_trainer", "unetr_pp_trainer_synapse",
                                                          "unetr_trainer", "swin_unetr_trainer", "uxnet_trainer",
                                                          "repuxnet_trainer", "deformuxnet_trainer")}
    assert seeds == {"nnunet_trainer": "nnunet", "unetr_pp_trainer_synapse": "unetr_pp", "unetr_trainer": "unetr_btcv",
                     "swin_unetr_trainer": "swin_unetr_btcv", "uxnet_trainer": "uxnet", "repuxnet_trainer": "uxnet",
                     "deformuxnet_trainer": "uxnet"}


def test_warmup_cosine_equals_the_seed_scheduler_closed_form():
    base, warm, total = 1e-4, 50, 5000
    assert lr_at("warmup_cosine", 0, total, base, warm) == 0.0
    assert lr_at("warmup_cosine", 25, total, base, warm) == pytest.approx(25 * base / 49)
    assert lr_at("warmup_cosine", 49, total, base, warm) == pytest.approx(base)
    assert lr_at("warmup_cosine", 50, total, base, warm) == pytest.approx(base)
    mid = 50 + (total - 50) // 2
    assert lr_at("warmup_cosine", mid, total, base, warm) == pytest.approx(
        0.5 * base * (1 + math.cos(math.pi * (mid - 50) / (total - 50))))
    assert lr_at("constant", 123, total, base) == base
    assert lr_at("poly", 500, 1000, 1e-2) == pytest.approx(1e-2 * 0.5 ** 0.9)


def test_intensity_pipeline_equals_monai_transforms_of_the_seed():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1000, 1000, size=(1, 20, 18, 16)).astype(np.float32)
    image[:, :3] = -1000  # air slab: below a_min, clipped to 0 and cropped away as background
    label = (rng.uniform(size=(1, 20, 18, 16)) > 0.8).astype(np.float32)
    ref = Compose([ScaleIntensityRanged(keys=["image"], a_min=-175.0, a_max=250.0, b_min=0.0, b_max=1.0, clip=True),
                   CropForegroundd(keys=["image", "label"], source_key="image")])
    expected = ref({"image": image.copy(), "label": label.copy()})
    ours = intensity_pipeline(RECIPES["unetr_btcv"].windows["btcv"])({"image": image.copy(), "label": label.copy()})
    np.testing.assert_allclose(np.asarray(ours["image"]), np.asarray(expected["image"]), rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(ours["label"]), np.asarray(expected["label"]))
    by_hand = np.clip((image[:, 3:] + 175) / 425, 0, 1)
    np.testing.assert_allclose(np.asarray(ours["image"]), by_hand, atol=1e-6)


def test_monai_loss_and_augmentation():
    logits = torch.randn(2, 3, 8, 8, 8)
    target = torch.randint(0, 3, (2, 1, 8, 8, 8))
    ref = MonaiDiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True, smooth_nr=0.0, smooth_dr=1e-6)
    assert float(monai_loss(RECIPES["unetr_btcv"])(logits, target)) == pytest.approx(float(ref(logits, target)))
    batch = {"data": torch.randn(2, 1, 8, 8, 8), "target": [target], "keys": ["a", "b"]}
    for name in ("unetr_btcv", "uxnet"):
        out = batch_augmenter(RECIPES[name], seed=0)(batch)
        assert out["data"].shape == batch["data"].shape and out["target"][0].dtype == torch.int64
        assert set(out["target"][0].unique().tolist()) <= {0, 1, 2}
    # a (y, x) plane that is not square: 180-degree turns only, so every sample keeps the patch shape
    flat = {"data": torch.randn(8, 1, 4, 4, 8), "target": [torch.randint(0, 3, (8, 1, 4, 4, 8))], "keys": list("abcdefgh")}
    for seed in range(5):
        out = batch_augmenter(RECIPES["unetr_btcv"], seed=seed, patch_size=(4, 4, 8))(flat)
        assert out["data"].shape == flat["data"].shape and out["target"][0].shape == flat["target"][0].shape


def test_seed_recipe_that_does_not_fit_is_refused():
    with pytest.raises(UnetrPPError, match="has regions; allowed values for it: nnunet"):
        resolve_recipe("seed", "unetr_btcv", "unetr_trainer", regions=True)
    with pytest.raises(UnetrPPError, match="has no seed recipe; allowed values for it: nnunet"):
        resolve_recipe("seed", None, "my_trainer", regions=False)
    with pytest.raises(UnetrPPError, match="--recipe 'x': allowed values are nnunet, seed"):
        resolve_recipe("x", "nnunet", "nnunet_trainer", regions=False)


@pytest.mark.parametrize("trainer, recipe, lr0", [("unetr_trainer", "unetr_btcv", 0.0),
                                                  ("uxnet_trainer", "uxnet", 1e-4),
                                                  ("unetr_pp_trainer", "unetr_pp", 1e-2)])
def test_one_cpu_training_step_per_seed_recipe(tiny_task, trainer, recipe, lr0):
    assert main(run_args(trainer=trainer, epochs=1, iters=1) + ["--recipe", "seed"]) == 0
    folder = fold_folder(tiny_task, trainer=f"{trainer}-seed")
    assert not fold_folder(tiny_task, trainer=trainer).exists()  # the common recipe's folder stays apart
    log = next(folder.glob("training_log_*.txt")).read_text()
    assert f"recipe {recipe} (" in log
    warned = "WARNING: --recipe seed: the plans normalize with CTNormalization" in log  # tiny task: nnU-Net plans
    assert warned == (recipe != "unetr_pp") and (recipe != "unetr_btcv" or "--preset btcv gives" in log)
    final = read_checkpoint(folder / "model_final_checkpoint.model")
    assert final.content["plot_stuff"]["lr"] == pytest.approx([lr0])


def test_cli_bad_recipe_options(capsys):
    for extra, message in ((["--recipe", "paper"], "--recipe 'paper': allowed values are nnunet, seed"),
                           (["--lr", "0"], "--lr must be a number > 0"),
                           (["--lr_schedule", "step"], "--lr_schedule 'step': allowed values are poly, warmup_cosine, "
                                                       "constant")):
        assert main(["3d_fullres", "unetr_trainer", "1", "0"] + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
