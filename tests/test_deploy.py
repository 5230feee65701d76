"""Models out: ONNX / TorchScript export of every registry network, `unetr_pp_export`, `--backend onnxruntime`.

References: the torch network itself (exported outputs within 1e-4 on a fresh batch of 2, while the export was
traced with a batch of 1), and `unetr_pp_predict --backend torch` for the onnxruntime backend.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from test_networks import tiny_config

from unetr_pp.cli.export import main as export_main
from unetr_pp.cli.predict import main as predict_main
from unetr_pp.inference import predictor
from unetr_pp.inference.deploy import (
    FORMATS,
    IO_FILE,
    PLANS_FILE,
    export_network,
    load_exported,
    load_exported_model,
)
from unetr_pp.inference.predictor import PredictionOptions, predict_folder
from unetr_pp.io import Geometry, read_image, write_image
from unetr_pp.networks import NETWORK_NAMES, build_network
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import save_json

TOLERANCE = 1e-4
# (network, format) pairs that cannot be exported at the default opset, and a phrase of the reason
UNSUPPORTED = {("deformuxnet", "onnx"): "GridSample with 5D volumetric input"}
# fewer blocks than tests/test_networks.py's tiny networks: tracing costs time per op
FEWER_BLOCKS = {name: {"depths": [1, 1, 1, 1]} for name in ("uxnet", "repuxnet", "deformuxnet")}
# networks whose exports are also compared with torch here, not only by export_network's own check
COMPARED_HERE = ("unetr_pp", "nnunet")
TASK = "Task005_Deploy"
TRAINER = "deploy_trainer"
GEOMETRY = Geometry((2.0, 0.8, 0.8), (1.0, 2.0, 3.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def _randomize_offsets(net: torch.nn.Module) -> None:
    """Non-zero deformable offsets (they start at zero), so a wrong grid_sample export would show."""
    torch.manual_seed(1)
    for module in net.modules():
        if hasattr(module, "offset") and isinstance(module.offset, torch.nn.Conv3d):
            torch.nn.init.normal_(module.offset.weight, std=0.2)


def small_config(name: str) -> dict:
    """tests/test_networks.py's tiny configuration at the smallest patch the network takes in eval mode (16^3,
    16x16x32, 32x32x64, else its own): the export is traced op by op, so this keeps the test fast."""
    config = tiny_config(name)
    config["network_kwargs"][name].update(FEWER_BLOCKS.get(name, {}))
    for patch in ([16, 16, 16], [16, 16, 32], [32, 32, 64]):
        try:
            net = build_network(name, {**config, "patch_size": patch}, deep_supervision=False).eval()
            with torch.inference_mode():
                net(torch.zeros(1, config["num_input_channels"], *patch))
        except (UnetrPPError, ValueError, RuntimeError):
            continue
        return {**config, "patch_size": patch}
    return config


def _check_against_torch(net: torch.nn.Module, path, fmt: str, config: dict) -> None:
    x = torch.randn(2, config["num_input_channels"], *config["patch_size"], generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = net(x)
        got = load_exported(path, fmt)(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_every_network_exports_with_torch_outputs_or_says_why_in_one_line(name, fmt, tmp_path):
    config = small_config(name)
    torch.manual_seed(0)
    net = build_network(name, config, deep_supervision=False).eval()
    _randomize_offsets(net)
    path = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    input_shape = [config["num_input_channels"], *config["patch_size"]]
    if (name, fmt) in UNSUPPORTED:
        with pytest.raises(UnetrPPError) as err:
            export_network(net, path, fmt, input_shape, name=name)
        message = str(err.value)
        assert "\n" not in message and f"network {name!r} cannot be exported" in message
        assert UNSUPPORTED[name, fmt] in message and "--opset" in message
        assert list(tmp_path.iterdir()) == []
        return
    assert export_network(net, path, fmt, input_shape, name=name) <= TOLERANCE
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    if name in COMPARED_HERE:
        _check_against_torch(net, path, fmt, config)


def test_deformable_grid_sample_exports_at_opset_20(tmp_path):
    config = small_config("deformuxnet")
    torch.manual_seed(0)
    net = build_network("deformuxnet", config, deep_supervision=False).eval()
    _randomize_offsets(net)
    input_shape = [2, *config["patch_size"]]
    assert export_network(net, tmp_path / "m.onnx", "onnx", input_shape, opset=20, name="deformuxnet") <= TOLERANCE


# ---------------------------------------------------------------- trained folders through the CLIs

CONFIG = {"data_identifier": "unetr_pp_Plansv2.1_3d_fullres", "batch_size": 2, "median_shape": [16.0, 16.0, 16.0],
          "resampling": {"order_data": 3, "order_seg": 1, "order_z": 0, "separate_z_anisotropy_threshold": 3.0},
          "patch_size": [16, 16, 16], "num_input_channels": 1, "num_classes": 3, "spacing": [2.0, 0.8, 0.8],
          "pool_op_kernel_sizes": [[2, 2, 2], [2, 2, 2]], "conv_kernel_sizes": [[3, 3, 3]] * 3,
          "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
          "network_kwargs": {"nnunet": {"base_features": 4},
                             "deformuxnet": {"dims": [4, 8, 16, 32], "hidden_size": 32, "depths": [1, 1, 1, 1]}}}
PLANS = {"plans_identifier": "unetr_pp_Plansv2.1", "dataset_name": "Task005_Deploy", "channel_names": {"0": "MR"},
         "foreground_intensity_properties_per_channel": {}, "original_median_spacing": [],
         "original_median_shape": [], "preset": None, "overrides": {}, "preset_splits": None,
         "labels": {"0": "background", "1": "liver", "2": "tumour"}, "regions": None, "regions_class_order": None,
         "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
         "configurations": {"3d_fullres": CONFIG}}


def write_trained(results, network: str = "nnunet", folds=("0", "1"), plans: dict = PLANS) -> list[torch.nn.Module]:
    """Fold folders of `network` with random weights and sidecars, as training leaves them."""
    config = plans["configurations"]["3d_fullres"]
    folder = results / "unetr_pp" / "3d_fullres" / TASK / f"{TRAINER}__unetr_pp_Plansv2.1"
    nets = []
    for i, fold in enumerate(folds):
        torch.manual_seed(10 + i)
        net = build_network(network, config, deep_supervision=True)
        path = folder / f"fold_{fold}" / "model_final_checkpoint.model"
        path.parent.mkdir(parents=True)
        torch.save({"epoch": 1, "state_dict": net.state_dict()}, path)
        save_json({"trainer": TRAINER, "network": network, "configuration": "3d_fullres",
                   "plans_identifier": "unetr_pp_Plansv2.1", "task": TASK, "fold": fold, "plans": plans},
                  path.with_name(path.name + ".json"))
        nets.append(net.eval())
    return nets


def export_args(out, fmt: str = "onnx", *extra) -> list[str]:
    return ["-t", TASK, "-tr", TRAINER, "--format", fmt, "-o", str(out), *extra]


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_cli_writes_models_plans_and_io_description(env_folders, tmp_path, fmt, capsys):
    nets = write_trained(env_folders["RESULTS_FOLDER"])
    out = tmp_path / "exported"
    assert export_main(export_args(out, fmt, "-f", "0", "1")) == 0
    assert "exported nnunet folds 0 1" in capsys.readouterr().out
    model_file = "model.onnx" if fmt == "onnx" else "model.pt"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == sorted(
        [IO_FILE, PLANS_FILE, "fold_0", "fold_1", f"fold_0/{model_file}", f"fold_1/{model_file}"])
    io = json.loads((out / IO_FILE).read_text())
    assert io["input"]["shape"] == ["batch", 1, 16, 16, 16] and io["output"]["shape"] == ["batch", 3, 16, 16, 16]
    assert io["input"]["name"] == "image" and io["output"]["name"] == "logits"
    assert io["output"]["labels"] == PLANS["labels"] and io["input"]["channels"] == {"0": "MR"}
    assert io["folds"] == {"0": f"fold_0/{model_file}", "1": f"fold_1/{model_file}"}
    assert io["sliding_window"]["patch_size"] == [16, 16, 16]
    assert io["preprocessing"]["normalization_schemes"] == ["ZScoreNormalization"]
    assert json.loads((out / PLANS_FILE).read_text()) == PLANS
    for fold, net in zip(("0", "1"), nets):
        _check_against_torch(net, out / io["folds"][fold], fmt, CONFIG)
    if fmt == "onnx":
        session = ort.InferenceSession(str(out / "fold_0" / "model.onnx"), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape == ["batch", 1, 16, 16, 16]
        assert session.get_modelmeta() is not None


def _error_line(capsys) -> str:
    """The CLI's error: one line, the last on stderr (after any progress bar)."""
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ")
    return err


def test_export_of_an_unsupported_network_leaves_nothing(env_folders, tmp_path, capsys):
    plans = {**PLANS, "configurations": {"3d_fullres": {**CONFIG, "patch_size": [16, 16, 32]}}}
    write_trained(env_folders["RESULTS_FOLDER"], "deformuxnet", folds=("0",), plans=plans)
    before = sorted(tmp_path.iterdir())
    assert export_main(export_args(tmp_path / "out")) == 2
    err = _error_line(capsys)
    assert "network 'deformuxnet' cannot be exported to ONNX at opset 17" in err and "GridSample" in err
    assert sorted(tmp_path.iterdir()) == before


def test_export_of_an_unknown_fold_names_it_and_writes_nothing(env_folders, tmp_path, capsys):
    write_trained(env_folders["RESULTS_FOLDER"], folds=("0",))
    assert export_main(export_args(tmp_path / "out", "torchscript", "-f", "0", "7")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoints for fold(s) 0 7 not found")
    assert "fold_7/model_final_checkpoint.model (missing)" in err
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_non_empty_output_folder_unless_overwrite(env_folders, tmp_path, capsys):
    write_trained(env_folders["RESULTS_FOLDER"], folds=("0",))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert export_main(export_args(tmp_path / "out", "torchscript")) == 2
    assert "not empty" in _error_line(capsys)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert export_main(export_args(tmp_path / "out", "torchscript", "--overwrite")) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([IO_FILE, "fold_0", PLANS_FILE])


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_missing_deploy_extra_says_how_to_install_it(env_folders, tmp_path, monkeypatch, capsys, module):
    write_trained(env_folders["RESULTS_FOLDER"], folds=("0",))
    monkeypatch.setitem(sys.modules, module, None)
    assert export_main(export_args(tmp_path / "out")) == 2
    err = _error_line(capsys)
    assert f"{module} is not installed" in err and 'pip install -e ".[deploy]"' in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "in").mkdir()
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "pred"), "-t", TASK, "-tr", TRAINER,
                         "--backend", "onnxruntime"]) == 2
    assert f"{module} is not installed" in _error_line(capsys)
    assert not (tmp_path / "pred").exists()


def identity_preprocess(case_id, images, plans, configuration):
    """Raw image as the preprocessed one (no crop, resampling or normalization)."""
    from unetr_pp.io import read_case_images

    data, geometry = read_case_images(images)
    shape = list(data.shape[1:])
    return data, {"case_id": case_id, "geometry": geometry.to_json(), "original_shape": shape,
                  "bbox": [[0, s] for s in shape], "shape_after_cropping": shape,
                  "original_spacing": list(geometry.spacing), "transpose_forward": [0, 1, 2],
                  "spacing_after_resampling": list(geometry.spacing), "shape_after_resampling": shape,
                  "use_nonzero_mask": False}


def test_onnxruntime_backend_and_exported_folder_predict_what_torch_predicts(env_folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predictor, "preprocess_case", identity_preprocess)
    write_trained(env_folders["RESULTS_FOLDER"])
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for case_id, shape in (("a", (20, 24, 18)), ("b", (12, 16, 30))):
        image = rng.standard_normal(shape).astype(np.float32) * 2
        write_image(image, GEOMETRY, tmp_path / "in" / f"{case_id}_0000.nii.gz")

    def predict(backend: str) -> int:
        return predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / backend), "-t", TASK, "-tr", TRAINER,
                             "--backend", backend, "--mirror_axes", "1", "2", "--save_probabilities",
                             "-npp", "0", "-nps", "0", "--device", "cpu"])

    assert predict("torch") == 0 and predict("onnxruntime") == 0
    assert "backend onnxruntime" in capsys.readouterr().out
    for case_id in ("a", "b"):
        torch_labels, _ = read_image(tmp_path / "torch" / f"{case_id}.nii.gz")
        ort_labels, geometry = read_image(tmp_path / "onnxruntime" / f"{case_id}.nii.gz")
        np.testing.assert_array_equal(ort_labels, torch_labels)
        assert len(np.unique(torch_labels)) > 1 and geometry.mismatch(GEOMETRY, tol=1e-6) == []
        probs = [np.load(tmp_path / b / f"{case_id}.npz")["probabilities"] for b in ("torch", "onnxruntime")]
        assert np.abs(probs[0] - probs[1]).max() <= TOLERANCE
    model = env_folders["RESULTS_FOLDER"] / "unetr_pp" / "3d_fullres" / TASK / f"{TRAINER}__unetr_pp_Plansv2.1"
    fold = model / "fold_0"
    cache = fold / "model_final_checkpoint.onnx"
    stamp = json.loads((fold / "model_final_checkpoint.onnx.json").read_text())
    assert stamp["input_shape"] == [1, 16, 16, 16] and stamp["max_abs_difference_to_torch"] <= TOLERANCE
    written = cache.stat().st_mtime_ns
    (tmp_path / "onnxruntime" / "a.nii.gz").unlink()
    assert predict("onnxruntime") == 0
    assert cache.stat().st_mtime_ns == written

    assert export_main(export_args(tmp_path / "exported", "torchscript")) == 0
    model = load_exported_model(tmp_path / "exported")
    assert model.folds == ["0", "1"] and model.network_name == "nnunet"
    options = PredictionOptions(mirror_axes=(1, 2), num_processes_preprocessing=0, num_processes_export=0)
    assert predict_folder(tmp_path / "in", tmp_path / "from_export", model, options).failed == {}
    for case_id in ("a", "b"):
        np.testing.assert_array_equal(read_image(tmp_path / "from_export" / f"{case_id}.nii.gz")[0],
                                      read_image(tmp_path / "torch" / f"{case_id}.nii.gz")[0])


def test_export_module_runs_as_a_script():
    out = subprocess.run([sys.executable, "-m", "unetr_pp.cli.export", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--format" in out.stdout and "--opset" in out.stdout
