"""Architecture comparison: budget parsing, the resume decision, and the report from hand-made fold results."""
from __future__ import annotations

import json
import os
import sys

import pytest

from unetr_pp.cli import compare as compare_cli
from unetr_pp.comparison import compare as compare_mod
from unetr_pp.comparison import runs
from unetr_pp.comparison.compare import ComparisonOptions, run_comparison
from unetr_pp.comparison.runs import Budget, NetworkRun, parse_budget, training_decision, write_record
from unetr_pp.networks import build_network
from unetr_pp.networks.complexity import summary_plans_config
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import save_json

from plans_factory import config_json, make_plans

TASK = "Task990_Demo"
PLANS_ID = "unetr_pp_Plansv2.1"
BUDGET = Budget(epochs=2, iters_per_epoch=3, val_iters=1, val_disable_tta=True)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """RESULTS_FOLDER / preprocessed / raw folders in tmp, with plans for a 32x64x64 patch and 4 classes."""
    for var, sub in (("RESULTS_FOLDER", "results"), ("unetr_pp_preprocessed", "pre"),
                     ("unetr_pp_raw_data_base", "raw")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    config = summary_plans_config("unetr_pp", "synapse", patch_size=[32, 64, 64], num_classes=4)
    plans = make_plans({"3d_fullres": config_json(**config)}, plans_identifier=PLANS_ID, dataset_name=TASK)
    plans.save(tmp_path / "pre" / TASK / f"{PLANS_ID}.json")
    return tmp_path


def fake_summary(dice: dict[str, float], hd95: dict[str, float], unit: str = "mm", cases: int = 2) -> dict:
    """A validation summary in the unetr_pp.evaluation.report format."""
    mean = {name: {"Dice": dice[name], "HD95": hd95[name], "Dice_std": 0.0, "HD95_std": 0.0,
                   "n_one_empty": 0, "n_both_empty": 0} for name in dice}
    return {"hd95_unit": unit, "protocol": "labels of dataset.json", "mean": mean,
            "metric_per_case": [{"case": f"c{i}"} for i in range(cases)],
            "foreground_mean": {"Dice": sum(dice.values()) / len(dice), "HD95": sum(hd95.values()) / len(hd95)}}


def finished_fold(network: str, summary: dict, budget: Budget | None) -> NetworkRun:
    """A fold folder with a checkpoint and validation summary, and a record of `budget` (None: no record)."""
    run = NetworkRun(network, TASK, "0", "3d_fullres", PLANS_ID)
    run.fold_dir.mkdir(parents=True)
    (run.fold_dir / runs.FINAL_CHECKPOINT).write_bytes(b"weights")
    save_json(summary, run.fold_dir / runs.VALIDATION_SUMMARY)
    if budget is not None:
        write_record(run, budget)
    return run


def test_parse_budget():
    assert parse_budget("14x25", 5, True) == Budget(14, 25, 5, True)
    assert parse_budget(" 3X4 ") == Budget(3, 4, None, False)
    assert parse_budget(None) == Budget()
    assert Budget(14, 25, 5, True).train_args() == ["--epochs", "14", "--iters_per_epoch", "25", "--val_iters", "5",
                                                    "--val_disable_tta"]
    assert Budget().train_args() == []
    for bad in ("14", "0x5", "ax3", "14x25x2"):
        with pytest.raises(UnetrPPError, match="EPOCHSxITERS"):
            parse_budget(bad)
    with pytest.raises(UnetrPPError, match="val_iters"):
        parse_budget("1x1", 0)


def test_training_decision(env):
    run = NetworkRun("nnunet", TASK, "0", "3d_fullres", PLANS_ID)
    assert training_decision(run, BUDGET) == (True, f"no model_final_checkpoint.model in {run.fold_dir}")
    run.fold_dir.mkdir(parents=True)
    checkpoint = run.fold_dir / runs.FINAL_CHECKPOINT
    checkpoint.write_bytes(b"w")
    assert training_decision(run, BUDGET)[1].startswith("no validation_raw/summary.json")
    save_json(fake_summary({"a": 0.5}, {"a": 1.0}), run.fold_dir / runs.VALIDATION_SUMMARY)
    train, why = training_decision(run, BUDGET)
    assert train and "budget unknown" in why
    write_record(run, BUDGET)
    assert training_decision(run, BUDGET) == (False, f"finished with the same budget ({run.fold_dir})")
    changed = Budget(epochs=3, iters_per_epoch=3, val_iters=1, val_disable_tta=True)
    train, why = training_decision(run, changed)
    assert train and why.startswith("budget changed (2 epochs x 3 iterations") and "-> 3 epochs" in why
    assert training_decision(run, Budget(2, 3, 1, False))[0]
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    train, why = training_decision(run, BUDGET)
    assert train and "changed since the comparison trained it" in why
    run.record_path.write_text("{not json")
    assert training_decision(run, BUDGET) == (True, f"{run.record_path} is unreadable")


def test_report_from_fake_results(env, monkeypatch):
    dice = {"spleen": 0.8123, "liver": 0.9, "aorta": 0.5}
    hd95 = {"spleen": 4.0, "liver": 2.5, "aorta": 12.25}
    reused = finished_fold("nnunet", fake_summary(dice, hd95, cases=3), BUDGET)
    old_budget = finished_fold("unetr_pp", fake_summary(dice, hd95), Budget(1, 1, 1, True))
    calls = []

    def fake_training(run, budget, device):
        calls.append((run.network, budget, device))
        return "training exited with code 1: RuntimeError: boom | bad"

    monkeypatch.setattr(compare_mod, "run_training", fake_training)
    options = ComparisonOptions(task=TASK, networks=["nnunet", "unetr_pp"], budget=BUDGET, device="cpu")
    rows, paths = run_comparison(options)
    assert calls == [("unetr_pp", BUDGET, "cpu")]  # nnunet reused, unetr_pp retrained (budget changed)
    out = env / "results" / "unetr_pp" / "3d_fullres" / TASK / "comparison_fold0"
    assert paths == [out / "comparison.json", out / "comparison.md", out / "comparison.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = json.loads(paths[0].read_text())
    assert data["task"] == TASK and data["fold"] == "0" and data["patch_size"] == [32, 64, 64]
    assert data["budget"] == {"epochs": 2, "iters_per_epoch": 3, "val_iters": 1, "val_disable_tta": True}
    assert data["targets"] == ["spleen", "liver", "aorta"]
    nnunet, unetr_pp = data["networks"]
    assert nnunet["status"] == "reused" and nnunet["dice"] == dice and nnunet["hd95"] == hd95
    assert nnunet["mean_dice"] == pytest.approx((0.8123 + 0.9 + 0.5) / 3)
    assert nnunet["mean_hd95"] == pytest.approx((4.0 + 2.5 + 12.25) / 3)
    assert nnunet["num_cases"] == 3 and nnunet["summary_file"] == str(reused.fold_dir / runs.VALIDATION_SUMMARY)
    config = summary_plans_config("unetr_pp", "synapse", patch_size=[32, 64, 64], num_classes=4)
    expected_params = sum(p.numel() for p in build_network("nnunet", config, deep_supervision=False).parameters())
    assert nnunet["params"] == expected_params and nnunet["macs"] > 0
    assert unetr_pp["status"] == "failed" and unetr_pp["reason"].endswith("RuntimeError: boom | bad")
    assert unetr_pp["mean_dice"] is None and unetr_pp["dice"] == {} and unetr_pp["params"] > 0
    assert old_budget.fold_dir.is_dir()

    md = paths[1].read_text()
    nnunet_line = next(line for line in md.splitlines() if line.startswith("| nnunet |"))
    cells = [c.strip() for c in nnunet_line.strip("|").split("|")]
    assert cells == ["nnunet", "nnunet", f"{expected_params / 1e6:.2f}", f"{nnunet['macs'] / 1e9:.2f}", "81.23", "90.00",
                     "50.00", "73.74", "6.25", "reused"]
    failed_line = next(line for line in md.splitlines() if line.startswith("| unetr_pp |"))
    status = "failed: training exited with code 1: RuntimeError: boom \\| bad"
    assert failed_line.endswith(f"| – | – | – | – | – | {status} |")
    assert "mean HD95 (mm)" in md and "2 epochs x 3 iterations, 1 validation iterations/epoch" in md
    assert "- recipe: the common nnU-Net/UNETR++ recipe for every network" in md


def test_seed_recipe_rows_folders_and_commands(env, monkeypatch, capsys):
    """--recipe seed: each network's own recipe in its own -seed folder; no seed recipe -> common one, said once."""
    calls = []
    monkeypatch.setattr(compare_mod, "run_training", lambda run, budget, device: calls.append(run) or "stopped")
    rows, paths = run_comparison(ComparisonOptions(task=TASK, networks=["unetr", "nnunet", "nnformer", "uxnet"],
                                                   budget=BUDGET, recipe="seed"))
    assert [(row["network"], row["recipe"]) for row in rows] == [
        ("unetr", "unetr_btcv"), ("nnunet", "nnunet"), ("nnformer", "nnunet"), ("uxnet", "uxnet")]
    task_dir = env / "results" / "unetr_pp" / "3d_fullres" / TASK
    assert [run.fold_dir.parent.name for run in calls] == [
        f"unetr_trainer-seed__{PLANS_ID}", f"nnunet_trainer__{PLANS_ID}", f"nnformer_trainer__{PLANS_ID}",
        f"uxnet_trainer-seed__{PLANS_ID}"]
    assert [runs.train_command(run, BUDGET, None)[-2:] == ["--recipe", "seed"] for run in calls] == [
        True, False, False, True]
    out = capsys.readouterr().out
    assert out.count("trained with the common nnunet recipe") == 1
    assert "== nnformer: trainer nnformer_trainer has no seed recipe; allowed values for it: nnunet; trained with " \
           "the common nnunet recipe" in out
    assert paths[0] == task_dir / "comparison_fold0_seed" / "comparison.json"
    assert json.loads(paths[0].read_text())["recipe"] == "seed"
    md = paths[1].read_text()
    assert "| unetr | unetr_btcv |" in md and "each network under its own paper's recipe (`--recipe seed`" in md


def test_cli_bad_recipe_is_one_line(env, capsys):
    assert compare_cli.main(["-t", TASK, "--networks", "nnunet", "--recipe", "paper"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --recipe 'paper': allowed values are nnunet, seed"]
    assert compare_cli.main(["-t", TASK, "--table", "--recipe", "seed"]) == 2
    assert "--recipe cannot be used with it" in capsys.readouterr().err


def test_complexity_failure_is_a_failed_row(env, monkeypatch):
    finished_fold("uxnet", fake_summary({"a": 0.5}, {"a": 1.0}), BUDGET)

    def no_patch(name, config, convention):
        raise UnetrPPError(f"network {name}: patch {config['patch_size']} is not divisible by 32")

    monkeypatch.setattr(compare_mod, "summarize", no_patch)
    rows, _ = run_comparison(ComparisonOptions(task=TASK, networks=["uxnet"], budget=BUDGET))
    assert rows[0]["status"] == "failed" and "not divisible by 32" in rows[0]["reason"]


def test_run_training_reports_the_last_error_line(env, monkeypatch, capfd):
    run = NetworkRun("nnunet", TASK, "0", "3d_fullres", PLANS_ID)
    script = "import sys; sys.stderr.write('epoch 1\\r\\nTraceback ...\\nValueError: shapes differ\\n'); sys.exit(3)"
    monkeypatch.setattr(runs, "train_command", lambda *a: [sys.executable, "-c", script])
    assert runs.run_training(run, BUDGET, None) == "training exited with code 3: ValueError: shapes differ"
    assert "ValueError: shapes differ" in capfd.readouterr().err  # shown live too


def test_cpu_training_gets_passive_openmp_threads(env, monkeypatch):
    run = NetworkRun("nnunet", TASK, "0", "3d_fullres", PLANS_ID)
    script = "import os, sys; sys.stderr.write(os.environ.get('OMP_WAIT_POLICY', 'unset')); sys.exit(1)"
    monkeypatch.setattr(runs, "train_command", lambda *a: [sys.executable, "-c", script])
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert runs.run_training(run, BUDGET, "cpu").endswith(": PASSIVE")
    assert runs.run_training(run, BUDGET, "cuda").endswith(": unset")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert runs.run_training(run, BUDGET, "cpu").endswith(": ACTIVE")


def test_run_training_success_writes_the_record(env, monkeypatch):
    run = NetworkRun("nnunet", TASK, "0", "3d_fullres", PLANS_ID)
    script = (f"import pathlib; d = pathlib.Path({str(run.fold_dir)!r}); (d / 'validation_raw').mkdir(parents=True); "
              "(d / 'model_final_checkpoint.model').write_bytes(b'w'); "
              "(d / 'validation_raw/summary.json').write_text('{}')")
    monkeypatch.setattr(runs, "train_command", lambda *a: [sys.executable, "-c", script])
    assert runs.run_training(run, BUDGET, None) is None
    assert training_decision(run, BUDGET)[0] is False
    monkeypatch.setattr(runs, "train_command", lambda *a: [sys.executable, "-c", "pass"])
    run2 = NetworkRun("unetr_pp", TASK, "0", "3d_fullres", PLANS_ID)
    assert runs.run_training(run2, BUDGET, None) == (
        f"training finished without {run2.fold_dir / 'model_final_checkpoint.model'}")


def test_train_command():
    run = NetworkRun("uxnet", TASK, "1", "3d_fullres", PLANS_ID)
    assert runs.train_command(run, BUDGET, "cuda") == [
        sys.executable, "-m", "unetr_pp.cli.train", "3d_fullres", "uxnet_trainer", TASK, "1",
        "--epochs", "2", "--iters_per_epoch", "3", "--val_iters", "1", "--val_disable_tta", "--device", "cuda"]
    seed_run = NetworkRun("uxnet", TASK, "1", "3d_fullres", "custom_plans", "uxnet")
    assert runs.train_command(seed_run, Budget(), None)[-4:] == ["-p", "custom_plans", "--recipe", "seed"]


def test_cli_errors(env, capsys):
    assert compare_cli.main(["-t", TASK, "--networks", "nnunet", "--budget", "3"]) == 2
    assert "--budget '3': expected EPOCHSxITERS" in capsys.readouterr().err
    assert compare_cli.main(["-t", "Task991_Missing", "--networks", "nnunet"]) == 2
    assert "plans not found; run unetr_pp_plan_and_preprocess -t Task991_Missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare_cli.main(["-t", TASK, "--networks", "resnet"])
    assert compare_cli.main(["-t", TASK, "--networks", "nnunet", "nnunet"]) == 2
    assert "lists a network twice" in capsys.readouterr().err
    for fold in ("x", "all"):
        assert compare_cli.main(["-t", TASK, "--networks", "nnunet", "--fold", fold]) == 2
        assert f"--fold '{fold}': expected a fold number" in capsys.readouterr().err


def test_cli_exit_code_when_a_network_failed(env, monkeypatch, capsys):
    finished_fold("nnunet", fake_summary({"a": 0.5}, {"a": 1.0}), BUDGET)
    monkeypatch.setattr(compare_mod, "run_training", lambda run, budget, device: "no memory")
    code = compare_cli.main(["-t", TASK, "--networks", "nnunet", "unetr_pp", "--budget", "2x3", "--val_iters", "1",
                             "--disable_tta"])
    out = capsys.readouterr().out
    assert code == 1 and "failed: unetr_pp" in out and "| nnunet |" in out and "reused" in out


def test_protocol_reevaluates_validation_raw(env):
    """--protocol acdc: DSC from the fold's validation_raw images against labelsTr, not from its summary.json."""
    import numpy as np

    from unetr_pp.io import Geometry, write_image

    geometry = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    ref = np.zeros((4, 8, 8), np.uint8)
    ref[0:2, 0:4, 0:4], ref[2:4, 0:4, 0:4], ref[0:4, 4:8, 4:8] = 1, 2, 3  # 32, 32 and 64 voxels
    shrunk = ref.copy()
    shrunk[0:4, 4:8, 6:8] = 0  # LV: 32 of 64 voxels predicted -> Dice 2 * 32 / 96
    raw = env / "raw" / "unetr_pp_raw_data" / TASK
    run = finished_fold("nnunet", fake_summary({"a": 0.1}, {"a": 9.0}), BUDGET)
    for case, pred in (("c0", shrunk), ("c1", ref)):
        write_image(ref, geometry, raw / "labelsTr" / f"{case}.nii.gz")
        write_image(pred, geometry, run.fold_dir / "validation_raw" / f"{case}.nii.gz")
    write_image(ref, geometry, raw / "labelsTr" / "c2.nii.gz")  # not in this fold's validation: skipped
    rows, _ = run_comparison(ComparisonOptions(task=TASK, networks=["nnunet"], budget=BUDGET, protocol="acdc"))
    row = rows[0]
    assert row["status"] == "reused" and row["num_cases"] == 2
    assert row["dice"] == pytest.approx({"RV": 1.0, "Myo": 1.0, "LV": (2 * 32 / 96 + 1.0) / 2})
    assert row["mean_dice"] == pytest.approx((2.0 + (2 * 32 / 96 + 1.0) / 2) / 3)
    evaluation = env / "results" / "unetr_pp" / "3d_fullres" / TASK / "comparison_fold0" / "evaluation" / "nnunet"
    assert row["summary_file"] == str(evaluation / "summary.json")
    assert json.loads((evaluation / "summary.json").read_text())["protocol"] == "acdc"


def test_the_same_slices_of_every_network_side_by_side(env, monkeypatch, capsys):
    """comparison_slices.png: one validation case, one row per network, identical image slices in every row."""
    import numpy as np

    from unetr_pp.comparison.slices import SLICES_FILE
    from unetr_pp.evaluation.overlays import comparison_figure
    from unetr_pp.evaluation.protocols import PROTOCOLS
    from unetr_pp.io import Geometry, write_image

    geometry = Geometry((3.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 20.0, (8, 24, 24)).astype(np.float32)
    ref = np.zeros((8, 24, 24), np.uint8)
    ref[2:6, 4:12, 4:12], ref[2:6, 12:20, 12:20] = 1, 3
    worse = ref.copy()
    worse[2:6, 12:20, 12:16] = 0
    raw = env / "raw" / "unetr_pp_raw_data" / TASK
    (raw / "dataset.json").parent.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps(
        {"name": TASK, "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "RV", "2": "Myo", "3": "LV"},
         "training": [], "numTraining": 0, "tensorImageSize": "3D"}))
    write_image(image, geometry, raw / "imagesTr" / "c0_0000.nii.gz")
    write_image(ref, geometry, raw / "labelsTr" / "c0.nii.gz")
    predictions = {"nnunet": ref, "unetr_pp": worse}
    for network, pred in predictions.items():
        run = finished_fold(network, fake_summary({"RV": 0.9}, {"RV": 1.0}), BUDGET)
        write_image(pred, geometry, run.fold_dir / "validation_raw" / "c0.nii.gz")
    monkeypatch.setattr(compare_mod, "complexity_of", lambda network, config: ({"params": 1, "macs": 1}, ""))
    rows, paths = run_comparison(ComparisonOptions(task=TASK, networks=["nnunet", "unetr_pp"], budget=BUDGET))
    out = env / "results" / "unetr_pp" / "3d_fullres" / TASK / "comparison_fold0"
    assert paths[-1] == out / SLICES_FILE and paths[-1].read_bytes()[:4] == b"\x89PNG"
    assert f"- {SLICES_FILE}: validation case c0, the same axial, coronal and sagittal slices" in paths[1].read_text()
    assert "warning" not in capsys.readouterr().err

    figure = comparison_figure("c0", ref, predictions, geometry, PROTOCOLS["acdc"].targets, image, False, {})
    shown = [np.asarray(ax.get_images()[0].get_array()) for ax in figure.axes]
    assert len(shown) == 6  # 2 networks x 3 views
    for first, second in zip(shown[:3], shown[3:]):
        np.testing.assert_array_equal(first, second)  # the same slices in both rows
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())
    crops = []
    for ax in figure.axes:
        box = ax.get_window_extent()
        crops.append(pixels[int(pixels.shape[0] - box.y1):int(pixels.shape[0] - box.y0), int(box.x0):int(box.x1)])
    pairs = [(a[:min(len(a), len(b)), :b.shape[1]], b[:min(len(a), len(b)), :a.shape[1]])
             for a, b in zip(crops[:3], crops[3:])]  # the same panel sizes, up to a rounded pixel
    assert any(not np.array_equal(a, b) for a, b in pairs)  # the contours differ
