"""`unetr_pp_compare --table`: the seeds' table layout from existing cross-validation and test results."""
from __future__ import annotations

import json

import numpy as np
import pytest

from unetr_pp.cli import compare as compare_cli
from unetr_pp.evaluation.cross_validation import CVOptions, run_cross_validation
from unetr_pp.io import Geometry, write_image
from unetr_pp.networks import build_network
from unetr_pp.networks.complexity import summary_plans_config
from unetr_pp.utilities.files import save_json

from plans_factory import config_json, make_plans

TASKS = ("Task901_Alpha", "Task902_Beta")
PLANS_ID = "unetr_pp_Plansv2.1"
GEOMETRY = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
CONFIG = summary_plans_config("unetr_pp", "synapse", patch_size=[32, 64, 64], num_classes=3)
PLANS_JSON = make_plans({"3d_fullres": config_json(**CONFIG)}).to_json()


def _reference() -> np.ndarray:
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[0:4, 0:4, 0:4] = 1  # 64 voxels
    ref[5:8, 5:8, 5:8] = 2  # 27 voxels
    return ref


def _fold(root, task: str, network: str, fold: int, removed: int) -> None:
    """A finished fold whose one validation case misses `removed` z-slices (16 voxels each) of label 1."""
    raw = root / "raw" / "unetr_pp_raw_data" / task
    save_json({"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2},
               "numTraining": 2, "file_ending": ".nii.gz"}, raw / "dataset.json")
    fold_dir = root / "results" / "unetr_pp" / "3d_fullres" / task / f"{network}_trainer__{PLANS_ID}" / f"fold_{fold}"
    ref = _reference()
    pred = ref.copy()
    pred[0:removed] = np.where(pred[0:removed] == 1, 0, pred[0:removed])
    write_image(ref, GEOMETRY, raw / "labelsTr" / f"case_{fold}.nii.gz")
    write_image(pred, GEOMETRY, fold_dir / "validation_raw" / f"case_{fold}.nii.gz")
    (fold_dir / "model_final_checkpoint.model").write_bytes(b"weights")
    save_json({"network": network, "configuration": "3d_fullres", "plans": PLANS_JSON},
              fold_dir / "model_final_checkpoint.model.json")
    save_json({}, fold_dir / "validation_raw" / "summary.json")


@pytest.fixture
def results(tmp_path, monkeypatch):
    """nnunet trained on both tasks (2 folds each), unetr_pp on the first only, each with its cv_summary.json."""
    for var, sub in (("RESULTS_FOLDER", "results"), ("unetr_pp_raw_data_base", "raw"),
                     ("unetr_pp_preprocessed", "pre")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    runs = {("nnunet", TASKS[0]): (0, 1), ("nnunet", TASKS[1]): (2, 2), ("unetr_pp", TASKS[0]): (1, 3)}
    for (network, task), removed in runs.items():
        for fold, r in enumerate(removed):
            _fold(tmp_path, task, network, fold, r)
        run_cross_validation(CVOptions(task=task, trainer=f"{network}_trainer", folds=("0", "1"), num_processes=1,
                                       postprocessing=False))
    return tmp_path


def _liver(removed: int) -> float:
    kept = 16 * (4 - removed)
    return 2 * kept / (64 + kept)


def test_one_task_has_organ_columns(results, capsys):
    assert compare_cli.main(["--table", "-t", TASKS[0], "--networks", "nnunet", "unetr_pp", "swin_unetr"]) == 0
    out = results / "results" / "unetr_pp" / "3d_fullres" / "seed_tables" / f"{TASKS[0]}_cv"
    table = json.loads((out / "seed_table.json").read_text())
    assert table["layout"] == "organs" and table["columns"] == ["liver", "spleen"]
    nnunet, unetr_pp, swin = table["networks"]
    params = sum(p.numel() for p in build_network("nnunet", CONFIG, deep_supervision=False).parameters())
    assert nnunet["params"] == params and nnunet["macs"] > 0
    liver = (_liver(0) + _liver(1)) / 2
    assert nnunet["results"][TASKS[0]]["dice"] == pytest.approx({"liver": liver, "spleen": 1.0})
    assert swin["results"][TASKS[0]]["missing"].startswith("no ") and swin["params"] is None
    md = (out / "seed_table.md").read_text()
    assert md in capsys.readouterr().out
    line = next(li for li in md.splitlines() if li.startswith("| nnunet |"))
    assert [c.strip() for c in line.strip("|").split("|")] == [
        "nnunet", f"{params / 1e6:.2f}", f"{nnunet['macs'] / 1e9:.2f}", f"{liver * 100:.2f}", "100.00",
        f"{(liver + 1) / 2 * 100:.2f}", f"{nnunet['results'][TASKS[0]]['mean_hd95']:.2f}"]
    assert "| swin_unetr | – | – | – | – | – | – |" in md
    assert "CV mean over folds 0 1, without postprocessing" in md
    assert (out / "seed_table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_tasks_have_task_columns(results, tmp_path):
    out = tmp_path / "table"
    assert compare_cli.main(["--table", "-t", *TASKS, "--networks", "nnunet", "unetr_pp", "-o", str(out)]) == 0
    table = json.loads((out / "seed_table.json").read_text())
    assert table["layout"] == "tasks" and table["columns"] == list(TASKS)
    md = (out / "seed_table.md").read_text()
    nnunet = next(li for li in md.splitlines() if li.startswith("| nnunet |")).strip("|").split("|")
    assert [c.strip() for c in nnunet[3:]] == [f"{((_liver(0) + _liver(1)) / 2 + 1) / 2 * 100:.2f}",
                                               f"{(_liver(2) + 1) / 2 * 100:.2f}"]
    unetr_pp = next(li for li in md.splitlines() if li.startswith("| unetr_pp |")).strip("|").split("|")
    assert unetr_pp[-1].strip() == "–"  # no run on the second task


def test_test_summaries_and_errors(results, tmp_path, capsys):
    summary = {"hd95_unit": "mm", "metric_per_case": [{}, {}, {}],
               "mean": {"liver": {"Dice": 0.9, "HD95": 3.0}, "spleen": {"Dice": 0.7, "HD95": 5.0}},
               "foreground_mean": {"Dice": 0.8, "HD95": 4.0}}
    save_json(summary, tmp_path / "test" / TASKS[0] / "nnunet" / "summary.json")
    template = str(tmp_path / "test" / "{task}" / "{network}" / "summary.json")
    assert compare_cli.main(["--table", "-t", TASKS[0], "--networks", "nnunet", "--test_summary", template,
                             "--complexity", "seed"]) == 0
    out = results / "results" / "unetr_pp" / "3d_fullres" / "seed_tables" / f"{TASKS[0]}_test"
    table = json.loads((out / "seed_table.json").read_text())
    row = table["networks"][0]
    assert row["results"][TASKS[0]]["dice"] == {"liver": 0.9, "spleen": 0.7}
    assert row["params"] == pytest.approx(31.20e6, abs=5e3) and row["macs"] == pytest.approx(225.14e9, abs=5e6)
    assert "test set, 3 cases" in (out / "seed_table.md").read_text()
    capsys.readouterr()
    assert compare_cli.main(["--table", "-t", TASKS[0], "--networks", "uxnet"]) == 2
    assert "no results to tabulate: uxnet Task901_Alpha: no " in capsys.readouterr().err
    assert compare_cli.main(["--table", "-t", TASKS[0], "--test_summary", "{task}/{model}.json"]) == 2
    assert "unknown placeholder(s) {model}" in capsys.readouterr().err
    assert compare_cli.main(["--table", "-t", TASKS[0], "--budget", "2x2"]) == 2
    assert "--budget cannot be used with it" in capsys.readouterr().err
    assert compare_cli.main(["-t", *TASKS, "--networks", "nnunet"]) == 2
    assert "several tasks only with --table" in capsys.readouterr().err
    assert compare_cli.main(["-t", TASKS[0], "--networks", "nnunet", "-o", "x"]) == 2
    assert "-o only go with --table" in capsys.readouterr().err
