"""Importing 3D UX-Net / RepUX-Net / DeformUX-Net / UNETR / SwinUNETR checkpoints in their official layouts:
our network's outputs equal those of the layout's module (re-created in tests/released_fakes.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.networks.nets import UNETR, SwinUNETR
from released_fakes import public_ux_model, randomize

from unetr_pp.cli.import_model import main as import_main
from unetr_pp.inference.models import load_trained_model
from unetr_pp.utilities.files import load_json

TASK = "Task101_FLARE"
SMALL = {"dims": (48, 24, 24, 32), "depths": (1, 2, 1, 1), "hidden_size": 32}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTS_FOLDER", str(tmp_path / "results"))
    return tmp_path / "results" / "unetr_pp" / "3d_fullres"


def _import(path, results, trainer: str, *extra: str):
    assert import_main([str(path), "-t", TASK, "-tr", trainer, "-f", "0", *extra]) == 0
    folder = results / TASK / f"{trainer}__unetr_pp_Plansv2.1"
    sidecar = load_json(folder / "fold_0" / "model_final_checkpoint.model.json")
    return load_trained_model(folder, ["0"]).networks[0], sidecar


def _same_output(ours, theirs, shape, rtol: float = 1e-5) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=rtol * expected.abs().max().item(), rtol=0), \
        (got - expected).abs().max().item()


@pytest.mark.parametrize("source", ["uxnet", "repuxnet", "deformuxnet"])
def test_ux_family_pth_from_main_train(tmp_path, results, source):
    public = randomize(public_ux_model(source, 5, **SMALL))
    path = tmp_path / "best_metric_model.pth"
    torch.save(public.state_dict(), path)  # main_train.py: torch.save(model.state_dict(), ...)
    ours, sidecar = _import(path, results, f"{source}_trainer")
    config = sidecar["plans"]["configurations"]["3d_fullres"]
    kwargs = config["network_kwargs"][source]
    assert sidecar["network"] == source and kwargs["dims"] == list(SMALL["dims"])
    assert kwargs["depths"] == list(SMALL["depths"]) and kwargs["hidden_size"] == 32
    assert kwargs["mlp"] == {"uxnet": "grouped", "repuxnet": "none", "deformuxnet": "grouped"}[source]
    # FLARE (5 outputs): Spacingd (1.0, 1.0, 1.2) on (x, y, z), window [-125, 275] -> [0, 1]
    assert sidecar["plans"]["transpose_forward"] == [2, 1, 0] and config["spacing"] == [1.0, 1.0, 1.2]
    window = sidecar["plans"]["foreground_intensity_properties_per_channel"]["0"]
    assert [window[k] for k in ("percentile_00_5", "percentile_99_5", "mean", "std")] == [-125, 275, -125, 400]
    _same_output(ours, public, (1, 1, 32, 32, 32))


def test_repuxnet_fold_reparam(tmp_path, results):
    public = randomize(public_ux_model("repuxnet", 16, **SMALL), seed=1)
    path = tmp_path / "repux.pth"
    torch.save(public.state_dict(), path)
    ours, sidecar = _import(path, results, "repuxnet_trainer", "--fold_reparam")
    assert sidecar["plans"]["configurations"]["3d_fullres"]["network_kwargs"]["repuxnet"]["reparameterized"] is True
    assert sidecar["plans"]["preset"] == "amos"  # 16 outputs
    assert not any(k.endswith("running_mean") for k in ours.state_dict() if k.startswith("encoder.stages"))
    _same_output(ours, public, (1, 1, 32, 32, 32), rtol=1e-4)


def test_ux_preset_of_another_class_count_is_refused(tmp_path, results, capsys):
    path = tmp_path / "amos.pth"
    torch.save(public_ux_model("uxnet", 16, **SMALL).state_dict(), path)
    assert import_main([str(path), "-t", TASK, "-tr", "uxnet_trainer", "-f", "0", "--preset", "flare"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: --preset flare has 5 outputs but the checkpoint's head has 16" in err
    assert not results.exists()


def _unetr() -> UNETR:
    return randomize(UNETR(1, 14, (32, 32, 32), feature_size=16, hidden_size=96, mlp_dim=192, num_heads=12,
                           proj_type="perceptron", norm_name="instance", res_block=True))


def test_unetr_best_acc_with_module_prefix(tmp_path, results):
    public = _unetr()
    path = tmp_path / "UNETR_model_best_acc.pth"
    old_monai = {k: v for k, v in public.state_dict().items() if ".norm_cross_attn." not in k}  # MONAI 0.x keys
    torch.save({"epoch": 5000, "best_acc": 0.8, "state_dict": {f"module.{k}": v for k, v in old_monai.items()}}, path)
    ours, sidecar = _import(path, results, "unetr_trainer")
    config = sidecar["plans"]["configurations"]["3d_fullres"]
    assert config["patch_size"] == [32, 32, 32]  # 8 position embeddings of 16^3 patches
    assert sidecar["plans"]["preset"] == "btcv" and config["spacing"] == [1.5, 1.5, 2.0]
    _same_output(ours, public, (1, 1, 32, 32, 32))


def test_unetr_torchscript(tmp_path, results):
    public = _unetr()
    path = tmp_path / "UNETR_model_best_acc.pt"
    torch.jit.trace(public, torch.zeros(1, 1, 32, 32, 32), check_trace=False).save(str(path))
    ours, _ = _import(path, results, "unetr_trainer")
    assert load_json(path.parent / "results" / "unetr_pp" / "3d_fullres" / TASK / "unetr_trainer__unetr_pp_Plansv2.1"
                     / "fold_0" / "import_report.json")["torchscript"] is True
    _same_output(ours, public, (1, 1, 32, 32, 32))


def test_swin_unetr_btcv_finetuned(tmp_path, results):
    public = randomize(SwinUNETR(in_channels=1, out_channels=14, feature_size=12))
    path = tmp_path / "swin_unetr.base_5000ep_f48_lr2e-4_pretrained.pt"
    torch.save({"epoch": 5000, "state_dict": public.state_dict()}, path)
    ours, sidecar = _import(path, results, "swin_unetr_trainer")
    assert sidecar["plans"]["configurations"]["3d_fullres"]["network_kwargs"]["swin_unetr"] == {"feature_size": 12}
    _same_output(ours, public, (1, 1, 32, 32, 64))


def test_self_supervised_swinvit_encoder_as_pretrained_weights(tmp_path, results, capsys):
    from unetr_pp.networks import build_network
    from unetr_pp.training.checkpoints import load_pretrained_weights

    config = {"patch_size": [64, 64, 64], "num_input_channels": 1, "num_classes": 3,
              "network_kwargs": {"swin_unetr": {"feature_size": 12}}}
    pretrained = randomize(build_network("swin_unetr", config, False), seed=4).swinViT
    encoder = {f"module.{k}": v for k, v in pretrained.state_dict().items()}  # SSL pre-training's DDP model
    heads = {"module.rotation_head.weight": torch.zeros(4, 96), "module.contrastive_head.weight": torch.zeros(512, 96)}
    path = tmp_path / "model_swinvit.pt"
    torch.save({"epoch": 100, "state_dict": {**encoder, **heads}}, path)
    network = build_network("swin_unetr", config, True)
    report = load_pretrained_weights(network, path)
    assert report["source"] == "swin_vit_ssl" and len(report["loaded"]) == len(encoder)
    assert sorted(s["key"] for s in report["skipped"]) == ["contrastive_head.weight", "rotation_head.weight"]
    assert report["not_in_file"] and all(not k.startswith("swinViT.") for k in report["not_in_file"])
    for key, value in pretrained.state_dict().items():
        assert torch.equal(network.swinViT.state_dict()[key], value), key
    # importing it as a segmentation model is refused with the reason
    assert import_main([str(path), "-t", TASK, "-tr", "swin_unetr_trainer", "-f", "0"]) == 2
    assert "encoder only (self-supervised pre-training)" in capsys.readouterr().err


def test_uxnet_pth_as_pretrained_weights_reports_the_new_head(tmp_path):
    from unetr_pp.networks import build_network
    from unetr_pp.training.checkpoints import load_pretrained_weights

    public = randomize(public_ux_model("uxnet", 5, **SMALL))
    path = tmp_path / "best_metric_model.pth"
    torch.save(public.state_dict(), path)
    config = {"patch_size": [32, 32, 32], "num_input_channels": 1, "num_classes": 3,
              "network_kwargs": {"uxnet": {k: list(v) if isinstance(v, tuple) else v for k, v in SMALL.items()}}}
    report = load_pretrained_weights(build_network("uxnet", config, True), path)
    assert report["source"] == "uxnet" and report["skipped"] == [] and report["not_in_file"] == []
    assert [m["key"] for m in report["shape_mismatch"]] == ["out.conv.conv.weight", "out.conv.conv.bias"]
    assert len(report["loaded"]) == len(public.state_dict()) - 2


LAYOUTS = Path(__file__).parent / "data" / "reference" / "released_layouts.json"


@pytest.mark.parametrize("source", ["uxnet", "repuxnet", "deformuxnet", "unetr", "swin_unetr"])
def test_full_size_released_layouts_map_onto_our_networks(source):
    """Every key of the recorded released layout gets our name and shape; ours has no key it lacks."""
    from unetr_pp.networks import build_network
    from unetr_pp.training.importing.keymaps import detect_source, rename_keys
    from unetr_pp.training.importing.networks import settings
    from unetr_pp.training.importing.plans import seed_dataset_for, seed_plans

    entries = json.loads(LAYOUTS.read_text())["layouts"][source]["state_dict"]
    sd = {k: torch.zeros(()).expand(shape) for k, shape in entries}
    layout = detect_source(sd)
    assert layout.name == source
    ours = rename_keys(sd, layout)
    kwargs, inputs, outputs, patch = settings(layout.network, ours)
    plans = seed_plans(seed_dataset_for(source, outputs, None, LAYOUTS), layout.network, kwargs, inputs, outputs,
                       "p", patch)
    with torch.device("cpu" if source == "swin_unetr" else "meta"):
        network = build_network(layout.network, plans.configuration("3d_fullres"), False)
    expected = {k: list(v.shape) for k, v in network.state_dict().items() if k in ours or not layout.is_optional(k)}
    assert {k: list(v.shape) for k, v in ours.items()} == expected


def test_prediction_on_a_raw_image_equals_their_pipeline(tmp_path, results):
    """An image already on the BTCV grid (RAS, 1.5 x 1.5 x 2.0 mm) and exactly one window: our unetr_pp_predict
    labels equal argmax(UNETR(ScaleIntensityRange(-175, 250) of the (x, y, z) array)) as their test.py computes."""
    import numpy as np
    from monai.transforms import ScaleIntensityRange

    from unetr_pp.cli.predict import main as predict_main
    from unetr_pp.io import Geometry, read_image, write_image

    public = _unetr()
    path = tmp_path / "UNETR_model_best_acc.pth"
    torch.save({"state_dict": public.state_dict()}, path)
    _import(path, results, "unetr_trainer")
    rng = np.random.default_rng(0)
    zyx = rng.integers(-400, 600, (32, 32, 32)).astype(np.int16)
    zyx[zyx == 0] = 1  # no zero voxel: the nonzero crop keeps the whole image, as their CropForeground
    geometry = Geometry((2.0, 1.5, 1.5), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    write_image(zyx, geometry, tmp_path / "in" / "case_0000.nii.gz")
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-t", TASK, "-tr", "unetr_trainer",
                         "-f", "0", "--disable_tta", "--device", "cpu", "-npp", "0", "-nps", "0"]) == 0
    ours = read_image(tmp_path / "out" / "case.nii.gz")[0]
    xyz = torch.from_numpy(zyx.transpose(2, 1, 0).astype(np.float32))[None, None]
    scaled = ScaleIntensityRange(-175, 250, 0.0, 1.0, clip=True)(xyz)
    with torch.no_grad():
        theirs = public(torch.as_tensor(scaled)).argmax(1)[0].numpy().transpose(2, 1, 0)
    assert ours.shape == theirs.shape
    assert (ours == theirs).mean() > 0.999
