"""unetr_pp_train in-process on a tiny task: fold files, predictor compatibility, --val, -c, learning, bad input."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
import torch

from unetr_pp.cli.train import main
from unetr_pp.inference.models import load_trained_model
from unetr_pp.io.plans import Plans
from unetr_pp.training.checkpoints import read_checkpoint
from unetr_pp.training.trainer import FoldSetup, TrainingOptions
from unetr_pp.training.trainers import get_trainer_class
from unetr_pp.utilities.files import load_json, save_json

from plans_factory import make_plans
from training_tasks import TASK, fold_folder, install, run_args, tiny_task, tiny_template  # noqa: F401 (fixtures)

ENV_DIRS = (("unetr_pp_raw_data_base", "raw"), ("unetr_pp_preprocessed", "preprocessed"), ("RESULTS_FOLDER", "results"))


@pytest.fixture(scope="module")
def trained_template(tiny_template, tmp_path_factory) -> tuple[Path, str]:
    """The tiny task with fold 0 of nnunet_trainer trained for 2 epochs, and what the run printed."""
    base = tmp_path_factory.mktemp("trained_fold")
    with pytest.MonkeyPatch.context() as mp:
        folders = {var: base / name for var, name in ENV_DIRS}
        for var, folder in folders.items():
            folder.mkdir()
            mp.setenv(var, str(folder))
        install(tiny_template, folders)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(run_args()) == 0
    return base, printed.getvalue()


@pytest.fixture
def trained(trained_template, env_folders) -> dict[str, Path]:
    """env_folders holding a fresh copy of the trained template."""
    base, _ = trained_template
    for var, name in ENV_DIRS:
        shutil.copytree(base / name, env_folders[var], dirs_exist_ok=True)
    return env_folders


def test_training_writes_the_fold_files_and_log(trained):
    folder = fold_folder(trained)
    names = sorted(p.name for p in folder.iterdir())
    assert [n for n in names if n.startswith("model_")] == [
        "model_best.model", "model_best.model.json", "model_final_checkpoint.model",
        "model_final_checkpoint.model.json"]
    assert "progress.png" in names and not any(n.startswith(".") for n in names)
    log = next(folder.glob("training_log_*.txt")).read_text()
    for text in ("device cpu", "loss DiceCELoss (softmax, labels)", "patch [16, 32, 32], batch 2",
                 "network parameters", "epoch 2/2: train loss",
                 "pseudo Dice", "EMA", "lr 0.005359"):
        assert text in log
    final = read_checkpoint(folder / "model_final_checkpoint.model")
    assert final.content["epoch"] == 2
    assert final.content["plot_stuff"]["lr"] == pytest.approx([1e-2, 1e-2 * 0.5 ** 0.9])
    assert len(final.content["plot_stuff"]["ema_pseudo_dice"]) == 2
    assert {k: final.sidecar[k] for k in ("trainer", "network", "task", "fold")} == {
        "trainer": "nnunet_trainer", "network": "nnunet", "task": TASK, "fold": "0"}


def test_trained_fold_loads_in_the_predictor(trained):
    model = load_trained_model(fold_folder(trained).parent, ["0"])
    assert model.networks[0](torch.zeros(1, 1, 16, 32, 32)).shape == (1, 3, 16, 32, 32)


def test_final_validation_predicts_and_evaluates_the_validation_cases(trained, trained_template):
    folder = fold_folder(trained)
    splits = load_json(trained["unetr_pp_preprocessed"] / TASK / "splits_final.json")
    summary = load_json(folder / "validation_raw" / "summary.json")
    assert sorted(c["case"] for c in summary["metric_per_case"]) == sorted(splits[0]["val"])
    assert set(summary["mean"]) == {"organ1", "organ2"}
    out = trained_template[1]
    assert "| DSC (%) | organ1 | organ2 |" in out and "progress.png" in out


def test_val_alone_recomputes_the_summary(trained):
    folder = fold_folder(trained)
    (folder / "validation_raw" / "summary.json").unlink()
    assert main(run_args() + ["--val"]) == 0
    assert (folder / "validation_raw" / "summary.json").is_file()


def test_continue_on_a_finished_fold_trains_no_further(trained):
    folder = fold_folder(trained)
    assert main(run_args() + ["-c"]) == 0
    assert read_checkpoint(folder / "model_final_checkpoint.model").content["epoch"] == 2


def test_continue_with_changed_plans_is_refused(trained, capsys):
    plans_path = trained["unetr_pp_preprocessed"] / TASK / "unetr_pp_Plansv2.1.json"
    plans = load_json(plans_path)
    plans["configurations"]["3d_fullres"]["batch_size"] = 3
    save_json(plans, plans_path)
    assert main(run_args() + ["-c"]) == 2
    assert "trained with a different plans" in capsys.readouterr().err


def test_training_loss_falls(tiny_task):
    assert main(run_args(fold="all", epochs=5, iters=4)) == 0
    losses = read_checkpoint(fold_folder(tiny_task, fold="all") / "model_final_checkpoint.model").content[
        "plot_stuff"]["train_loss"]
    assert len(losses) == 5
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.1, losses


def test_pretrained_weights_are_loaded_and_reported(tiny_task, capsys):
    assert main(run_args(fold="all", epochs=1, iters=1)) == 0
    source = fold_folder(tiny_task, fold="all") / "model_final_checkpoint.model"
    assert main(run_args(fold="0", epochs=1, iters=1) + ["--pretrained_weights", str(source)]) == 0
    out = capsys.readouterr().out
    assert f"pretrained weights {source} (layout ours): loaded" in out and "0 shape-mismatched" in out
    report = load_json(fold_folder(tiny_task, fold="0") / "pretrained_weights_report.json")
    assert report["file"] == str(source) and report["shape_mismatch"] == [] and report["not_in_file"] == []
    assert len(report["loaded"]) > 10


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_input_messages(tiny_task, capsys):
    assert "valid trainers: deformuxnet_trainer, nnformer_trainer, nnunet_trainer, repuxnet_trainer" in _error(
        capsys, run_args(trainer="no_such_trainer"))
    assert "fold 7 is outside the split: splits_final.json has 5 folds (0-4)" in _error(capsys, run_args(fold="7"))
    assert "supports --optimizer sgd, not 'adamw'" in _error(capsys, run_args() + ["--optimizer", "adamw"]).replace(
        " / ", ", ")
    assert "-c given but no valid checkpoint" in _error(capsys, run_args() + ["-c"])
    plans_path = tiny_task["unetr_pp_preprocessed"] / TASK / "unetr_pp_Plansv2.1.json"
    plans = load_json(plans_path)
    plans["configurations"]["3d_fullres"]["patch_size"] = [10, 32, 32]  # pooling needs z divisible by 4
    save_json(plans, plans_path)
    err = _error(capsys, run_args())
    assert "nnU-Net UNet: patch size [10, 32, 32] is not divisible by [4, 8, 8]" in err
    data = tiny_task["unetr_pp_preprocessed"] / TASK / plans["configurations"]["3d_fullres"]["data_identifier"]
    for path in data.iterdir():
        path.unlink()
    data.rmdir()
    assert "preprocessed data not found; run unetr_pp_plan_and_preprocess -t Task902_TrainTiny" in _error(
        capsys, run_args())
    plans_path.unlink()
    assert "plans not found; run unetr_pp_plan_and_preprocess" in _error(capsys, run_args())


def test_preset_trainer_applies_its_preset(tiny_template, tiny_task, tmp_path):
    plans = Plans.load(tiny_task["unetr_pp_preprocessed"] / TASK / "unetr_pp_Plansv2.1.json")
    setup = FoldSetup(TASK, "0", "3d_fullres", "unetr_pp_Plansv2.1", plans, tmp_path, tmp_path, tmp_path / "out")
    trainer = get_trainer_class("unetr_pp_trainer_synapse")(setup, TrainingOptions())
    config = trainer.config.to_json()
    assert trainer.network_name == "unetr_pp"
    assert config["patch_size"] == [64, 128, 128] and config["batch_size"] == 2
    assert config["network_kwargs"]["unetr_pp"]["stem_stride"] == [2, 4, 4]
    assert "img0001" in trainer.plans.preset_splits["0"]["val"]
    assert plans.to_json()["configurations"]["3d_fullres"]["patch_size"] == [16, 32, 32]  # input untouched
    # plans already made with the preset (and an override on top) are used as they are
    made = trainer.plans.to_json()
    made["configurations"]["3d_fullres"]["batch_size"] = 4
    same = get_trainer_class("unetr_pp_trainer_synapse")(
        FoldSetup(**{**setup.__dict__, "plans": Plans.from_json(made)}), TrainingOptions())
    assert same.config.batch_size == 4
    with pytest.raises(Exception, match="defines only 3d_fullres"):
        get_trainer_class("unetr_pp_trainer_acdc")(FoldSetup(**{**setup.__dict__, "configuration": "3d_lowres"}),
                                                   TrainingOptions())


def test_extra_trainer_folder(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(
        "from unetr_pp.training.trainers.nnunet import NNUNetTrainer\n\n"
        "class MyTrainer(NNUNetTrainer):\n    name = 'my_trainer'\n    initial_lr = 0.1\n")
    monkeypatch.setenv("unetr_pp_extra_trainers", str(tmp_path))
    cls = get_trainer_class("my_trainer")
    assert cls.__name__ == "MyTrainer" and cls.initial_lr == 0.1 and get_trainer_class("MyTrainer").name == "my_trainer"
    with pytest.raises(Exception, match="valid trainers: .*unetr_pp_trainer_tumor.*, my_trainer"):
        get_trainer_class("other")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(Exception, match="broken.py: cannot import extra trainer file"):
        get_trainer_class("other")


def test_region_training_runs_with_sigmoid_loss(tiny_task):
    plans_path = tiny_task["unetr_pp_preprocessed"] / TASK / "unetr_pp_Plansv2.1.json"
    plans = load_json(plans_path)
    plans.update(regions={"whole": [1, 2], "organ2": [2]}, regions_class_order=[1, 2])
    plans["configurations"]["3d_fullres"]["num_classes"] = 2
    save_json(plans, plans_path)
    assert main(run_args(fold="all", epochs=1, iters=2)) == 0
    folder = fold_folder(tiny_task, fold="all")
    final = read_checkpoint(folder / "model_final_checkpoint.model")
    assert final.content["state_dict"]["heads.2.weight"].shape[0] == 2  # one output per region
    assert len(final.content["plot_stuff"]["pseudo_dice"]) == 1
    summary = load_json(folder / "validation_raw" / "summary.json")
    assert len(summary["metric_per_case"]) == 5
    log = next(folder.glob("training_log_*.txt")).read_text()
    assert "loss DiceBCELoss (sigmoid, regions), batch Dice False, deep supervision weights [0.667, 0.333, 0.0]" in log


def test_builtin_trainers_and_optimizer_options(tmp_path):
    expected = {"nnunet_trainer": "nnunet", "unetr_pp_trainer": "unetr_pp", "unetr_trainer": "unetr",
                "swin_unetr_trainer": "swin_unetr", "uxnet_trainer": "uxnet", "repuxnet_trainer": "repuxnet",
                "deformuxnet_trainer": "deformuxnet", "unetr_pp_trainer_synapse": "unetr_pp",
                "unetr_pp_trainer_acdc": "unetr_pp", "unetr_pp_trainer_lung": "unetr_pp",
                "unetr_pp_trainer_tumor": "unetr_pp", "nnformer_trainer": "nnformer", "transbts_trainer": "transbts",
                "unest_base_trainer": "unest_base", "unest_large_trainer": "unest_large",
                "uxnet_k21_trainer": "uxnet_k21"}
    assert {name: get_trainer_class(name).network_name for name in expected} == expected
    setup = FoldSetup(TASK, "0", "3d_fullres", "p", make_plans(), tmp_path, tmp_path, tmp_path / "out")
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = get_trainer_class("uxnet_trainer")(setup, TrainingOptions()).configure_optimizer(params)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["lr"] == 1e-2 and sgd.defaults["momentum"] == 0.99 and sgd.defaults["nesterov"]
    assert sgd.defaults["weight_decay"] == 3e-5
    adamw = get_trainer_class("repuxnet_trainer")(setup, TrainingOptions(optimizer="adamw")).configure_optimizer(params)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["lr"] == 1e-4
    with pytest.raises(Exception, match="--epochs must be at least 1"):
        TrainingOptions(epochs=0)
