"""`unetr_pp_import_model` with official UNETR++ files: v1 pkl plans, presets, the probes through the import path,
in-place import, bad input (one line, exit 2, nothing written)."""
from __future__ import annotations

import functools
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from unetr_pp.cli.import_model import main as import_main
from unetr_pp.inference.models import load_trained_model
from unetr_pp.training.checkpoints import find_resume_checkpoint
from unetr_pp.training.trainers import get_trainer_class
from unetr_pp.utilities.files import load_json

from reference_probe import REFERENCE, probe_module

TASK = "Task002_Synapse"
TRAINER = "unetr_pp_trainer_synapse"


probe = probe_module()


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
                   modalities: int = 1, weights: dict | None = None) -> Path:
    """model_final_checkpoint.model (+ .model.pkl when trainer is given) with the probe weights (or `weights`)."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = probe_weights(dataset) if weights is None else weights
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


def layout_state_dict(dataset: str) -> dict:
    """Zero-stride stand-ins with the official layout's shapes (the file stays small)."""
    entries = json.loads((REFERENCE / f"unetr_pp_official_{dataset}.json").read_text())["state_dict"]
    return {key: torch.zeros((), dtype=getattr(torch, dtype)).expand(shape) for key, shape, dtype in entries}


def run_bad(args: list[str], capsys) -> str:
    """Run the CLI expecting exit 2 with one line on stderr; returns that line."""
    assert import_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _nothing_written(results: Path) -> bool:
    return not results.exists() or not any(p.is_file() for p in results.rglob("*"))


def test_bad_files(tmp_path, results, capsys):
    good = tmp_path / "good.model"
    torch.save(official_checkpoint({"out1.conv.conv.bias": torch.zeros(14)}), good)
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "notes.model"
    garbage.write_text("this is not a checkpoint\n" * 50)
    foreign = tmp_path / "nnformer.pth"
    torch.save({"model_down.patch_embed.proj.weight": torch.zeros(3)}, foreign)
    base = ["-t", TASK, "-tr", TRAINER, "-f", "0"]
    for path in (truncated, garbage):
        assert f"{path}: not a readable torch checkpoint" in run_bad([str(path), *base], capsys)
    assert "expected one of unetr_pp, uxnet" in run_bad([str(foreign), *base], capsys)
    line = run_bad([str(write_official(tmp_path / "d", "synapse", None, 13)), *base, "--source", "uxnet"], capsys)
    assert "not a uxnet checkpoint" in line and "it looks like a unetr_pp checkpoint" in line
    assert "only 3d_fullres" not in line
    assert "released checkpoints are 3d_fullres" in run_bad([str(good), *base, "-c", "3d_lowres"], capsys)
    assert _nothing_written(results)


def test_wrong_configuration_class_count_and_trainer(tmp_path, results, capsys):
    base = ["-t", TASK, "-tr", TRAINER, "-f", "0"]
    acdc = tmp_path / "acdc" / "model_final_checkpoint.model"
    acdc.parent.mkdir()
    torch.save(official_checkpoint(layout_state_dict("acdc")), acdc)
    with open(acdc.with_name(acdc.name + ".pkl"), "wb") as handle:  # a synapse pkl beside acdc weights
        pickle.dump(v1_pkl("unetr_pp_trainer_synapse", 3), handle)
    line = run_bad([str(acdc), *base], capsys)
    assert f"{acdc}: weights do not fit the expected unetr_pp" in line
    assert "it fits the official 'acdc' configuration" in line
    with open(acdc.with_name(acdc.name + ".pkl"), "wb") as handle:
        pickle.dump(v1_pkl("unetr_pp_trainer_acdc", 13), handle)
    line = run_bad([str(acdc), *base], capsys)
    assert "plans have 13 classes + background but the checkpoint's head has 4 outputs" in line
    with open(acdc.with_name(acdc.name + ".pkl"), "wb") as handle:
        pickle.dump(v1_pkl("nnUNetTrainerV2", 3), handle)
    line = run_bad([str(acdc), *base], capsys)
    assert f"{acdc}.pkl: trainer 'nnUNetTrainerV2' is not an official UNETR++ trainer" in line
    acdc.with_name(acdc.name + ".pkl").write_bytes(b"\x80\x04garbage")
    assert f"{acdc}.pkl: not a readable nnU-Net v1 .model.pkl" in run_bad([str(acdc), *base], capsys)
    assert _nothing_written(results)


def test_existing_fold_is_not_overwritten(tmp_path, results, capsys):
    fold = results / TASK / f"{TRAINER}__unetr_pp_Plansv2.1" / "fold_0"
    fold.mkdir(parents=True)
    (fold / "model_final_checkpoint.model").write_bytes(b"ours")
    (fold / "model_final_checkpoint.model.json").write_text("{}")
    source = tmp_path / "dl" / "model_final_checkpoint.model"
    source.parent.mkdir()
    torch.save(official_checkpoint(layout_state_dict("acdc")), source)
    with open(source.with_name(source.name + ".pkl"), "wb") as handle:
        pickle.dump(v1_pkl("unetr_pp_trainer_acdc", 3), handle)
    assert "already exists" in run_bad([str(source), "-t", TASK, "-tr", TRAINER, "-f", "0"], capsys)
    assert (fold / "model_final_checkpoint.model").read_bytes() == b"ours"
    assert sorted(p.name for p in fold.parent.iterdir()) == ["fold_0"]


def test_preset_without_pkl_takes_the_task_plans(tmp_path, results, capsys):
    from unetr_pp.io.plans import Plans
    from unetr_pp.planning.presets import merge_preset_and_overrides
    from unetr_pp.utilities.files import save_json

    source = tmp_path / "dl" / "model_final_checkpoint.model"
    source.parent.mkdir()
    torch.save(official_checkpoint(layout_state_dict("acdc")), source)
    line = run_bad([str(source), "-t", "Task027_ACDC", "-tr", "unetr_pp_trainer_acdc", "-f", "1"], capsys)
    assert "unetr_pp_plan_and_preprocess -t Task027_ACDC --preset acdc --no_preprocessing" in line
    plans = demo_plans(num_classes=4)
    save_json(plans, tmp_path / "preprocessed" / "Task027_ACDC" / "unetr_pp_Plansv2.1.json")
    assert import_main([str(source), "-t", "Task027_ACDC", "-tr", "unetr_pp_trainer_acdc", "-f", "1"]) == 0
    sidecar = load_json(results / "Task027_ACDC" / "unetr_pp_trainer_acdc__unetr_pp_Plansv2.1" / "fold_1"
                        / "model_final_checkpoint.model.json")
    expected = merge_preset_and_overrides(Plans.from_json(plans), "acdc", []).to_json()["configurations"]["3d_fullres"]
    assert sidecar["plans"]["configurations"]["3d_fullres"] == expected
    assert sidecar["plans"]["preset"] == "acdc"
    # unetr_pp_train -c finds it: same identity and plans as the acdc preset trainer would train with
    trainer_class = get_trainer_class("unetr_pp_trainer_acdc")
    trainer_plans = trainer_class.prepare_plans(trainer_class.__new__(trainer_class), Plans.from_json(plans), "3d_fullres")
    expected_sidecar = {"trainer": "unetr_pp_trainer_acdc", "network": "unetr_pp", "configuration": "3d_fullres",
                        "plans_identifier": "unetr_pp_Plansv2.1", "task": "Task027_ACDC", "fold": "1",
                        "plans": trainer_plans.to_json()}
    found, skipped = find_resume_checkpoint(results / "Task027_ACDC" / "unetr_pp_trainer_acdc__unetr_pp_Plansv2.1"
                                            / "fold_1", expected_sidecar)
    assert skipped == [] and found.content["epoch"] == 1000 and found.content["optimizer_state_dict"] is None


def demo_plans(num_classes: int) -> dict:
    """Planned plans of a small MR task, as unetr_pp_plan_and_preprocess writes them (before a preset)."""
    config = {"data_identifier": "unetr_pp_Plansv2.1_3d_fullres", "spacing": [5.0, 1.5, 1.5],
              "patch_size": [16, 160, 160], "batch_size": 4, "median_shape": [10.0, 240.0, 220.0],
              "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
              "resampling": {"order_data": 3, "order_seg": 1, "order_z": 0, "separate_z_anisotropy_threshold": 3.0},
              "pool_op_kernel_sizes": [[1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
              "conv_kernel_sizes": [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
              "num_classes": num_classes, "num_input_channels": 1, "network_kwargs": {}}
    return {"plans_identifier": "unetr_pp_Plansv2.1", "dataset_name": "Task027_ACDC", "channel_names": {"0": "MRI"},
            "labels": {"0": "background", "1": "RV", "2": "MLV", "3": "LVC"}, "regions": None,
            "regions_class_order": None, "original_median_spacing": [5.0, 1.5, 1.5],
            "original_median_shape": [10.0, 240.0, 220.0], "transpose_forward": [0, 1, 2],
            "transpose_backward": [0, 1, 2], "foreground_intensity_properties_per_channel": {"0": {}},
            "preset": None, "overrides": {}, "preset_splits": None, "configurations": {"3d_fullres": config}}


def test_run_evaluation_synapse_imports_the_official_file(tmp_path):
    """evaluation_scripts/run_evaluation_synapse.sh with the released file + pkl where the UNETR++ README puts it."""
    import os
    import subprocess
    import sys

    from unetr_pp.io import Geometry, write_image

    repo = Path(__file__).resolve().parents[1]
    raw = tmp_path / "data" / "unetr_pp_raw" / "unetr_pp_raw_data" / TASK
    labels = {str(i): f"organ{i}" for i in range(14)}
    labels["0"] = "background"
    (raw / "dataset.json").parent.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({
        "name": "Synapse", "labels": labels, "modality": {"0": "CT"}, "numTraining": 0, "tensorImageSize": "3D",
        "training": [], "test": ["./imagesTs/img0061.nii.gz"]}))
    geometry = Geometry((3.0, 0.76, 0.76), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    rng = np.random.default_rng(0)
    image = rng.integers(-200, 300, (20, 64, 64)).astype(np.int16)
    write_image(image, geometry, raw / "imagesTs" / "img0061_0000.nii.gz")
    label = np.zeros((20, 64, 64), np.uint8)
    label[5:10, 20:40, 20:40] = 1
    write_image(label, geometry, raw / "labelsTs" / "img0061.nii.gz")
    official = tmp_path / "unetr_pp_synapse_checkpoint"  # OUTPUT_DIR=unetr_pp/evaluation/unetr_pp_synapse_checkpoint
    fold = official / "unetr_pp" / "3d_fullres" / TASK / f"{TRAINER}__unetr_pp_Plansv2.1" / "fold_0"
    source = write_official(fold, "synapse", TRAINER, 13, weights=layout_state_dict("synapse"))
    env = {k: v for k, v in os.environ.items() if k not in ("RESULTS_FOLDER", "FOLD", "TRAINER")}
    env.update({"DATASET_DIR": str(tmp_path / "data"), "OUTPUT_DIR": str(official), "DEVICE": "cpu",
                "PYTHON": sys.executable})
    result = subprocess.run(["bash", str(repo / "evaluation_scripts" / "run_evaluation_synapse.sh"), "--disable_tta"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"released checkpoint without sidecar: importing {source}" in result.stdout
    assert (fold / "model_final_checkpoint.model.json").is_file()
    summary = json.loads((fold.parent / "test_predictions_fold_0" / "summary.json").read_text())
    assert [c["case"] for c in summary["metric_per_case"]] == ["img0061"]


def test_v1_plans_conversion_stage_transpose_and_old_init(tmp_path):
    """The stage comes from init[5] (old 11-argument inits drop elements 2 and -2), spacing and shapes are kept
    in the transposed order, original-axis values are transposed back, schemes and mask flags map per channel."""
    from unetr_pp.training.importing.v1_plans import convert_v1_plans

    info = v1_pkl("unetr_pp_trainer_acdc", 3, modalities=2, spacing=(5.0, 1.5, 1.5))
    plans = info["plans"]
    plans["transpose_forward"], plans["transpose_backward"] = [2, 0, 1], [1, 2, 0]
    lowres = dict(plans["plans_per_stage"][0], current_spacing=np.array([10.0, 3.0, 3.0]))
    plans["plans_per_stage"] = {0: dict(plans["plans_per_stage"][0]), 1: lowres}
    plans["normalization_schemes"] = OrderedDict([(0, "noNorm"), (1, "MRI")])
    init = list(info["init"])
    info["init"] = tuple(init[:2] + ["extra"] + init[2:5] + [0] + init[6:-1] + ["extra2", init[-1]])
    # stage 0 sits at index 6 before the deletion; index 5 holds batch_dice True (== 1: the lowres stage)
    assert len(info["init"]) == 11 and info["init"][6] == 0 and info["init"][5] is True
    out = convert_v1_plans(info, tmp_path / "x.pkl", "unetr_pp_Plansv2.1", 4).to_json()
    config = out["configurations"]["3d_fullres"]
    assert config["spacing"] == [5.0, 1.5, 1.5]  # stage 0, not the lowres stage 1
    assert out["transpose_forward"] == [2, 0, 1] and out["transpose_backward"] == [1, 2, 0]
    assert out["original_median_spacing"] == [1.5, 1.5, 5.0]
    assert config["normalization_schemes"] == ["NoNormalization", "ZScoreNormalization"]
    assert config["use_mask_for_norm"] == [True, True] and config["num_input_channels"] == 2
    assert config["patch_size"] == [16, 160, 160] and config["network_kwargs"]["unetr_pp"]["variant"] == "acdc"
    assert out["labels"] == {"0": "background", "1": "label_1", "2": "label_2", "3": "label_3"}
