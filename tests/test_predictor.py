"""Predictor and `unetr_pp_predict`: fold loading, case listing, ensembling, export pool, failures by name.

The registry (`build_network`) and raw-case preprocessing land from other branches; here they are
replaced by a 1x1x1-conv toy network and an identity preprocessor (no crop, no resampling), so the
expected output is the argmax of the softmax of the folds' mean logits computed directly.
"""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unetr_pp.cli.predict import main
from unetr_pp.inference import models, predictor
from unetr_pp.inference.inputs import list_input_cases
from unetr_pp.inference.models import load_trained_model
from unetr_pp.inference.predictor import PredictionOptions, predict_preprocessed_case
from unetr_pp.io import Geometry, read_case_images, read_image, write_image
from unetr_pp.io.plans import Configuration
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import save_json

from plans_factory import config_json, make_plans

TASK = "Task001_Toy"
TRAINER = "toy_trainer"
PLANS = make_plans({"3d_fullres": config_json(patch_size=[8, 8, 8], num_input_channels=2, num_classes=3)})
GEOMETRY = Geometry((2.5, 0.7, 0.8), (10.0, -5.0, 3.0), (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))


def toy_network(name: str, config: Configuration) -> nn.Module:
    assert name == "toy"
    return nn.Sequential(nn.Conv3d(config.num_input_channels, 6, 1), nn.Tanh(), nn.Conv3d(6, config.num_classes, 1))


def identity_preprocess(case_id, images, plans, configuration):
    data, geometry = read_case_images(images)
    shape = list(data.shape[1:])
    return data, {
        "case_id": case_id, "geometry": geometry.to_json(), "original_shape": shape,
        "bbox": [[0, s] for s in shape], "shape_after_cropping": shape, "original_spacing": list(geometry.spacing),
        "transpose_forward": [0, 1, 2], "spacing_after_resampling": list(geometry.spacing),
        "shape_after_resampling": shape, "use_nonzero_mask": False,
    }


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(models, "build_network", toy_network)
    monkeypatch.setattr(predictor, "preprocess_case", identity_preprocess)


def write_fold(folder: Path, fold: str, seed: int, prefix: str = "") -> nn.Module:
    torch.manual_seed(seed)
    net = toy_network("toy", PLANS.configuration("3d_fullres"))
    path = folder / f"fold_{fold}" / "model_final_checkpoint.model"
    path.parent.mkdir(parents=True)
    state = {prefix + k: v for k, v in net.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state, "optimizer_state_dict": None}, path)
    save_json({"trainer": TRAINER, "network": "toy", "configuration": "3d_fullres",
               "plans_identifier": "unetr_pp_Plansv2.1", "task": TASK, "fold": fold, "epoch": 3, "plans": PLANS.to_json()},
              path.with_name(path.name + ".json"))
    return net.eval()


@pytest.fixture
def trained(env_folders):
    folder = env_folders["RESULTS_FOLDER"] / "unetr_pp" / "3d_fullres" / TASK / f"{TRAINER}__unetr_pp_Plansv2.1"
    return folder, [write_fold(folder, "0", 0), write_fold(folder, "1", 1, prefix="module.")]


def write_case(folder: Path, case_id: str, shape=(5, 11, 9), seed=0) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal((2,) + shape).astype(np.float32)
    for c in range(2):
        write_image(data[c], GEOMETRY, folder / f"{case_id}_{c:04d}.nii.gz")
    return data


def expected_labels(nets, data) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(data)[None]
        return torch.softmax(torch.stack([n(x)[0] for n in nets]).mean(0), 0).argmax(0).numpy()


def run(tmp_path, *extra) -> int:
    return main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-t", "1", "-tr", TRAINER,
                 "-npp", "0", "-nps", "0", "--device", "cpu", *extra])


def test_folder_prediction_ensembles_folds_in_original_geometry(tmp_path, fakes, trained, capsys):
    _, nets = trained
    (tmp_path / "in").mkdir()
    cases = {"case_a": write_case(tmp_path / "in", "case_a", seed=1),
             "case_b": write_case(tmp_path / "in", "case_b", shape=(9, 6, 7), seed=2)}
    assert run(tmp_path, "-nps", "1", "--disable_tta") == 0
    for case_id, data in cases.items():
        labels, geometry = read_image(tmp_path / "out" / f"{case_id}.nii.gz")
        np.testing.assert_array_equal(labels, expected_labels(nets, data))
        assert geometry.mismatch(GEOMETRY, tol=1e-6) == []
    assert "wrote 2 case(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        "case_a_0000.nii.gz", "case_a_0001.nii.gz", "case_b_0000.nii.gz", "case_b_0001.nii.gz"]


def test_corrupt_case_is_reported_by_name_and_the_others_are_written(tmp_path, fakes, trained, capsys):
    (tmp_path / "in").mkdir()
    write_case(tmp_path / "in", "good_1", seed=1)
    write_case(tmp_path / "in", "bad", seed=2)
    write_case(tmp_path / "in", "good_2", seed=3)
    blob = (tmp_path / "in" / "bad_0001.nii.gz").read_bytes()
    (tmp_path / "in" / "bad_0001.nii.gz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "in" / "lonely_0000.nii.gz").write_bytes((tmp_path / "in" / "good_1_0000.nii.gz").read_bytes())
    assert run(tmp_path, "--disable_tta") == 2
    err = capsys.readouterr().err
    assert "prediction failed for 2 case(s)" in err
    assert "bad: " in err and "bad_0001.nii.gz" in err and "truncated" in err
    assert "lonely: channels [0] found, the model needs [0, 1]" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_1.nii.gz", "good_2.nii.gz"]


def test_refuses_to_write_into_the_input_folder(tmp_path, fakes, trained, capsys):
    (tmp_path / "in").mkdir()
    write_case(tmp_path / "in", "case_a")
    code = main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "."), "-t", TASK, "-tr", TRAINER,
                 "-npp", "0", "-nps", "0"])
    assert code == 2
    assert "output folder is the input folder" in capsys.readouterr().err
    assert len(list((tmp_path / "in").iterdir())) == 2


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, fakes, trained, capsys):
    (tmp_path / "in").mkdir()
    write_case(tmp_path / "in", "case_a")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "case_a.nii.gz").write_bytes(b"old")
    assert run(tmp_path, "--disable_tta") == 0
    assert "skipped 1" in capsys.readouterr().out
    assert (tmp_path / "out" / "case_a.nii.gz").read_bytes() == b"old"
    assert run(tmp_path, "--disable_tta", "--overwrite", "--save_probabilities") == 0
    assert read_image(tmp_path / "out" / "case_a.nii.gz")[0].shape == (5, 11, 9)
    assert np.load(tmp_path / "out" / "case_a.npz")["probabilities"].shape == (3, 5, 11, 9)


def test_missing_folds_list_what_was_looked_for(tmp_path, fakes, trained, capsys):
    (tmp_path / "in").mkdir()
    write_case(tmp_path / "in", "case_a")
    assert run(tmp_path, "-f", "0", "3", "all") == 2
    err = capsys.readouterr().err
    assert "fold_3/model_final_checkpoint.model (missing)" in err
    assert "fold_all/model_final_checkpoint.model (missing)" in err
    assert not (tmp_path / "out").exists()


def test_unknown_trainer_names_the_folder(tmp_path, fakes, trained, capsys):
    (tmp_path / "in").mkdir()
    assert main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-t", TASK, "-tr", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope__unetr_pp_Plansv2.1" in err and f"{TRAINER}__unetr_pp_Plansv2.1" in err


def test_load_trained_model_defaults_to_every_fold_and_checks_weights(trained, fakes):
    folder, nets = trained
    model = load_trained_model(folder)
    assert model.folds == ["0", "1"] and model.network_name == "toy"
    for loaded, original in zip(model.networks, nets):
        for a, b in zip(loaded.state_dict().values(), original.state_dict().values()):
            torch.testing.assert_close(a, b)
        assert not loaded.training
    bad = folder / "fold_0" / "model_final_checkpoint.model"
    torch.save({"epoch": 1, "state_dict": {"0.weight": torch.zeros(1)}}, bad)
    with pytest.raises(UnetrPPError, match="weights do not fit network 'toy'"):
        load_trained_model(folder, ["0"])


def test_predict_preprocessed_case_uses_sigmoid_for_regions(fakes):
    torch.manual_seed(0)
    net = toy_network("toy", PLANS.configuration("3d_fullres")).eval()
    data = np.random.default_rng(0).standard_normal((2, 6, 9, 8)).astype(np.float32)
    plans = PLANS.replace(regions={"a": [1], "b": [2], "c": [3]}, regions_class_order=(1, 2, 3))
    probs = predict_preprocessed_case([net], data, plans, "3d_fullres", PredictionOptions(mirror_axes=(2,)))
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(data)[None])[0]).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_input_listing_groups_channels_and_rejects_bad_names(tmp_path):
    for name in ("b_0001.nrrd", "b_0000.nrrd", "a_0000.nii.gz", "a_0001.mha", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    cases = {c.case_id: c for c in list_input_cases(tmp_path, 2)}
    assert [p.name for p in cases["b"].images] == ["b_0000.nrrd", "b_0001.nrrd"] and cases["b"].ending == ".nrrd"
    assert "different file types" in cases["a"].problem
    (tmp_path / "oops.nii.gz").write_bytes(b"")
    with pytest.raises(UnetrPPError, match="oops.nii.gz: image name must be"):
        list_input_cases(tmp_path, 2)


def test_bad_options_are_rejected_before_any_work(tmp_path, fakes, trained, capsys):
    (tmp_path / "in").mkdir()
    assert run(tmp_path, "--overlap", "1.0") == 2
    assert "step size" in capsys.readouterr().err


def test_module_runs_as_a_script():
    out = subprocess.run([sys.executable, "-m", "unetr_pp.cli.predict", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--overlap" in out.stdout and "-chk" in out.stdout


def test_preprocessing_pool_keeps_case_order_and_reports_errors(tmp_path):
    write_case(tmp_path, "a", seed=1)
    write_case(tmp_path, "b", seed=2)
    write_case(tmp_path, "c", seed=3)
    (tmp_path / "b_0000.nii.gz").write_bytes(b"not an image")
    cases = list_input_cases(tmp_path, 2)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(predictor._preprocessed(identity_preprocess, cases, PLANS, "3d_fullres", pool, 1))
    assert [case.case_id for case, _ in results] == ["a", "b", "c"]
    assert isinstance(results[1][1], UnetrPPError) and "b_0000.nii.gz" in str(results[1][1])
    data, properties = results[2][1]
    assert data.shape == (2, 5, 11, 9) and properties["case_id"] == "c"


def test_real_registry_network_loads_and_predicts(env_folders):
    """No fakes: a fold of the registry's nnU-Net UNet is rebuilt from its sidecar and predicts a volume."""
    from unetr_pp.networks import build_network

    config = config_json(patch_size=[16, 16, 16], num_input_channels=1, num_classes=3,
                         pool_op_kernel_sizes=[[2, 2, 2], [2, 2, 2]], conv_kernel_sizes=[[3, 3, 3]] * 3)
    plans = make_plans({"3d_fullres": config})
    torch.manual_seed(0)
    net = build_network("nnunet", config, deep_supervision=True)
    path = env_folders["RESULTS_FOLDER"] / "model" / "fold_all" / "model_latest.model"
    path.parent.mkdir(parents=True)
    torch.save({"epoch": 0, "state_dict": net.state_dict()}, path)
    save_json({"network": "nnunet", "configuration": "3d_fullres", "plans": plans.to_json()}, path.with_name(path.name + ".json"))
    model = load_trained_model(path.parent.parent, ["all"], "model_latest")
    data = np.random.default_rng(0).standard_normal((1, 16, 20, 16)).astype(np.float32)
    probs = predict_preprocessed_case(model.networks, data, plans, "3d_fullres", PredictionOptions(mirror_axes=()))
    assert probs.shape == (3, 16, 20, 16)
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)


def test_postprocessing_json_is_applied_unless_skipped_and_label_map(tmp_path, fakes, trained, capsys):
    from unetr_pp.inference.postprocessing import apply_postprocessing

    folder, nets = trained
    (tmp_path / "in").mkdir()
    data = write_case(tmp_path / "in", "case_a", shape=(9, 12, 11), seed=4)
    raw = expected_labels(nets, data)
    steps = [(1,), (2,)]
    post = apply_postprocessing(raw, steps)
    assert not np.array_equal(post, raw)  # the random network predicts several components per label
    save_json({"steps": [{"name": "a", "ids": [1]}, {"name": "b", "ids": [2]}]}, folder / "postprocessing.json")
    assert run(tmp_path, "--disable_tta") == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "case_a.nii.gz")[0], post)
    assert "largest component of [1]; largest component of [2]" in capsys.readouterr().out
    assert run(tmp_path, "--disable_tta", "--overwrite", "--no_postprocessing") == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "case_a.nii.gz")[0], raw)
    assert "skipped (--no_postprocessing)" in capsys.readouterr().out
    assert run(tmp_path, "--disable_tta", "--overwrite", "--label_map", "2:1", "-nps", "1") == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "case_a.nii.gz")[0], (post == 2).astype(np.uint8))
    save_json({"steps": [{"ids": []}]}, folder / "postprocessing.json")
    assert run(tmp_path, "--disable_tta", "--overwrite") == 2
    assert "postprocessing.json: every step needs positive label ids" in capsys.readouterr().err
