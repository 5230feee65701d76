"""`unetr_pp_import_model` with official UNETR++ files: v1 pkl plans, presets, the probes through the import path,
in-place import, bad input (one line, exit 2, nothing written)."""
from __future__ import annotations

import functools
import importlib.util
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from unetr_pp.cli.import_model import main as import_main
from unetr_pp.inference.models import load_trained_model
from unetr_pp.utilities.files import load_json

REFERENCE = Path(__file__).parent / "data" / "reference"
TASK = "Task002_Synapse"
TRAINER = "unetr_pp_trainer_synapse"


def _probe_module():
    spec = importlib.util.spec_from_file_location("probe_weights", REFERENCE / "probe_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _probe_module()


@functools.lru_cache(maxsize=2)
def probe_weights(dataset: str) -> dict:
    """The closed-form probe state dict of an official layout (cached: 40-120 M values)."""
    return probe.probe_state_dict(str(REFERENCE / f"unetr_pp_official_{dataset}.json"))


def official_checkpoint(state_dict: dict) -> dict:
    """The official trainers' save_checkpoint dict (numpy scalars in plot/best stuff)."""
    return {"epoch": 1000, "state_dict": state_dict,
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-2, "params": [0]}]},
            "lr_scheduler_state_dict": None,
            "plot_stuff": ([np.float64(0.5)], [np.float64(0.6)], [], [np.float64(0.71)]),
            "best_stuff": (998, np.float64(-0.61), np.float64(0.83))}


def v1_pkl(trainer: str, num_classes: int, modalities: int = 1, spacing=(3.0, 0.76, 0.76)) -> dict:
    """A `.model.pkl` as nnU-Net v1 / UNETR++ Trainer.save_checkpoint writes it (init, name, class, plans)."""
    intensity = OrderedDict((c, OrderedDict(median=40.0, mean=45.0, sd=60.0, mn=-1000.0, mx=2000.0,
                                            percentile_99_5=300.0, percentile_00_5=-150.0, local_props=OrderedDict()))
                            for c in range(modalities))
    stage = {"batch_size": 2, "num_pool_per_axis": [4, 5, 5], "patch_size": np.array([64, 128, 128]),
             "median_patient_size_in_voxels": np.array([148, 512, 512]), "current_spacing": np.array(spacing),
             "original_spacing": np.array(spacing), "do_dummy_2D_data_aug": False,
             "pool_op_kernel_sizes": [[1, 2, 2], [2, 2, 2]], "conv_kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]]}
    plans = {"num_stages": 1, "num_modalities": modalities,
             "modalities": OrderedDict((c, "CT" if modalities == 1 else f"MR{c}") for c in range(modalities)),
             "normalization_schemes": OrderedDict((c, "CT" if modalities == 1 else "nonCT") for c in range(modalities)),
             "dataset_properties": {"intensityproperties": intensity, "all_classes": list(range(1, num_classes + 1))},
             "num_classes": num_classes, "all_classes": list(range(1, num_classes + 1)), "base_num_features": 32,
             "use_mask_for_norm": OrderedDict((c, modalities > 1) for c in range(modalities)),
             "keep_only_largest_region": None, "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "data_identifier": "unetr_pp_Data_plans_v2.1", "plans_per_stage": {0: stage},
             "preprocessor_name": "GenericPreprocessor", "conv_per_stage": 2}
    init = ("/data/unetr_pp_preprocessed/Task002_Synapse/unetr_pp_Plansv2.1_plans_3D.pkl", 0, "/out/fold_0",
            "/data/unetr_pp_preprocessed/Task002_Synapse", True, 0, True, False, True)
    return OrderedDict(init=init, name=trainer, plans=plans,
                       **{"class": f"<class 'unetr_pp.training.network_training.{trainer}.{trainer}'>"})


def write_official(folder: Path, dataset: str, trainer: str | None, num_classes: int, prefix: str = "",
                   modalities: int = 1) -> Path:
    """model_final_checkpoint.model (+ .model.pkl when trainer is given) with the probe weights."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = probe_weights(dataset)
    path = folder / "model_final_checkpoint.model"
    torch.save(official_checkpoint({prefix + k: v for k, v in sd.items()}), path)
    if trainer is not None:
        with open(path.with_name(path.name + ".pkl"), "wb") as handle:
            pickle.dump(v1_pkl(trainer, num_classes, modalities), handle)
    return path


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RESULTS_FOLDER", str(tmp_path / "results"))
    monkeypatch.setenv("unetr_pp_preprocessed", str(tmp_path / "preprocessed"))
    monkeypatch.setenv("unetr_pp_raw_data_base", str(tmp_path / "raw"))
    return tmp_path / "results" / "unetr_pp" / "3d_fullres"


def assert_probe(network: torch.nn.Module, dataset: str) -> None:
    """The official eval_full probe output within rel_tolerance x abs_max."""
    reference = json.loads((REFERENCE / f"unetr_pp_official_{dataset}_probe.json").read_text())
    with torch.no_grad():
        out = network(probe.probe_input(reference["input_shape"]))
    got, expected = probe.probe_summary([out])[0], reference["eval_full"][0]
    tol = reference["rel_tolerance"] * expected["abs_max"]
    assert got["shape"] == expected["shape"]
    for key in ("mean", "std", "abs_max"):
        assert got[key] == pytest.approx(expected[key], abs=tol), key
    assert got["values"] == pytest.approx(expected["values"], abs=tol)


@pytest.mark.parametrize("dataset, trainer, classes, modalities, prefix", [
    ("synapse", "unetr_pp_trainer_synapse", 13, 1, ""),
    ("tumor", "unetr_pp_trainer_tumor", 3, 4, "module."),
])
def test_official_file_with_pkl_reproduces_the_probe(tmp_path, results, capsys, dataset, trainer, classes,
                                                    modalities, prefix):
    source = write_official(tmp_path / "download", dataset, trainer, classes, prefix, modalities)
    assert import_main([str(source), "-t", TASK, "-tr", trainer, "-f", "0"]) == 0
    assert "imported unetr_pp checkpoint" in capsys.readouterr().out
    folder = results / TASK / f"{trainer}__unetr_pp_Plansv2.1"
    sidecar = load_json(folder / "fold_0" / "model_final_checkpoint.model.json")
    plans = sidecar["plans"]
    config = plans["configurations"]["3d_fullres"]
    assert sidecar["network"] == "unetr_pp" and sidecar["epoch"] == 1000 and sidecar["trainer"] == trainer
    assert config["spacing"] == [3.0, 0.76, 0.76] and config["num_classes"] == classes + 1
    assert config["num_input_channels"] == modalities
    expected_norm = "CTNormalization" if modalities == 1 else "ZScoreNormalization"
    assert config["normalization_schemes"] == [expected_norm] * modalities
    assert config["use_mask_for_norm"] == [modalities > 1] * modalities
    assert plans["foreground_intensity_properties_per_channel"]["0"] == {
        "mean": 45.0, "std": 60.0, "median": 40.0, "min": -1000.0, "max": 2000.0,
        "percentile_00_5": -150.0, "percentile_99_5": 300.0}
    assert config["network_kwargs"]["unetr_pp"]["variant"] == dataset
    network = load_trained_model(folder, ["0"]).networks[0]
    if dataset == "synapse":
        assert_probe(network, dataset)
    else:  # test_unetr_pp.py runs the probe of every dataset on exactly these weights; the forward is slow here
        loaded = network.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in probe_weights(dataset).items())
    assert not list(folder.glob(".fold_0.import-*"))


def test_in_place_import_where_the_readme_puts_the_file(tmp_path, results):
    fold = results / TASK / f"{TRAINER}__unetr_pp_Plansv2.1" / "fold_0"
    source = write_official(fold, "synapse", TRAINER, 13)
    before = source.read_bytes()
    assert import_main([str(source), "-t", TASK, "-tr", TRAINER, "-f", "0"]) == 0
    assert source.read_bytes() == before  # the user's file is not rewritten
    assert (fold / "model_final_checkpoint.model.json").is_file() and (fold / "import_report.json").is_file()
    loaded = load_trained_model(fold.parent, ["0"]).networks[0].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in probe_weights("synapse").items())
