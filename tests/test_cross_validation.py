"""`unetr_pp_evaluate --cv`: five small fake folds -> per fold, pooled, mean ± std over folds; postprocessing.json."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from unetr_pp.cli.evaluate import main
from unetr_pp.evaluation import evaluate_folders
from unetr_pp.evaluation.cross_validation import fold_problem
from unetr_pp.io import Geometry, write_image
from unetr_pp.utilities.files import save_json

TASK = "Task901_Toy"
TRAINER = "toy_trainer"
GEOMETRY = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
SHAPE = (14, 14, 14)
# fold k predicts label 2 without its first k z-slabs (16 voxels each) -> Dice 2 n / (64 + n)
DICE_B = {0: 1.0, 1: 96 / 112, 2: 64 / 96, 3: 32 / 80}


def _case(k: int, island: bool) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros(SHAPE, np.uint8)
    ref[1:4, 1:4, 1:4] = 1  # label 1: 27 voxels
    ref[6:10, 6:10, 6:10] = 2  # label 2: 64 voxels
    pred = ref.copy()
    pred[6:6 + k] = np.where(pred[6:6 + k] == 2, 0, pred[6:6 + k])
    if island:
        pred[12, 12, 12] = 1  # false positive of label 1 -> Dice 54 / 55
    return ref, pred


@pytest.fixture
def cv_env(tmp_path, monkeypatch):
    """Raw task with labelsTr; folds 0-3 finished (fold 1 with two cases), fold 4 unfinished."""
    for var, sub in (("RESULTS_FOLDER", "results"), ("unetr_pp_raw_data_base", "raw"),
                     ("unetr_pp_preprocessed", "pre")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    raw = tmp_path / "raw" / "unetr_pp_raw_data" / TASK
    save_json({"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ_a": 1, "organ_b": 2},
               "numTraining": 5, "file_ending": ".nii.gz"}, raw / "dataset.json")
    trainer_dir = tmp_path / "results" / "unetr_pp" / "3d_fullres" / TASK / f"{TRAINER}__unetr_pp_Plansv2.1"
    folds = {0: [("c0", 0, True)], 1: [("c1", 1, False), ("c1b", 0, False)], 2: [("c2", 2, False)],
             3: [("c3", 3, False)]}
    for fold, cases in folds.items():
        fold_dir = trainer_dir / f"fold_{fold}"
        for name, k, island in cases:
            ref, pred = _case(k, island)
            write_image(ref, GEOMETRY, raw / "labelsTr" / f"{name}.nii.gz")
            write_image(pred, GEOMETRY, fold_dir / "validation_raw" / f"{name}.nii.gz")
        (fold_dir / "model_final_checkpoint.model").write_bytes(b"weights")
        save_json({"written": "by the trainer"}, fold_dir / "validation_raw" / "summary.json")
    (trainer_dir / "fold_4").mkdir()
    (trainer_dir / "fold_4" / "model_final_checkpoint.model").write_bytes(b"weights")
    return tmp_path, trainer_dir


def test_cv_report_on_five_folds(cv_env, capsys):
    tmp_path, trainer_dir = cv_env
    assert main(["--cv", "-t", TASK, "-tr", TRAINER, "-np", "1"]) == 0
    captured = capsys.readouterr()
    assert "fold 4 unfinished: no" in captured.err and "validation_raw/summary.json" in captured.err
    report = json.loads((trainer_dir / "cv_summary.json").read_text())
    assert report["folds_used"] == ["0", "1", "2", "3"] and list(report["folds_skipped"]) == ["4"]
    before = report["before_postprocessing"]
    per_fold = before["per_fold"]
    assert per_fold["0"]["mean"]["organ_a"]["Dice"] == pytest.approx(54 / 55)
    assert per_fold["1"]["num_cases"] == 2 and per_fold["1"]["mean"]["organ_b"]["Dice"] == pytest.approx(
        (DICE_B[1] + 1) / 2)
    fold_b = [1.0, (DICE_B[1] + 1) / 2, DICE_B[2], DICE_B[3]]
    over = before["fold_mean"]["mean"]["organ_b"]
    assert over["Dice"] == pytest.approx(np.mean(fold_b)) and over["Dice_std"] == pytest.approx(np.std(fold_b))
    pooled_b = [1.0, DICE_B[1], 1.0, DICE_B[2], DICE_B[3]]
    assert before["pooled"]["num_cases"] == 5
    assert before["pooled"]["mean"]["organ_b"]["Dice"] == pytest.approx(np.mean(pooled_b))

    merged = tmp_path / "merged"  # pooled == one evaluation of all the folds' predictions together
    for fold_dir in sorted(trainer_dir.glob("fold_[0-3]")):
        for path in (fold_dir / "validation_raw").glob("*.nii.gz"):
            merged.mkdir(exist_ok=True)
            (merged / path.name).write_bytes(path.read_bytes())
    together = evaluate_folders(tmp_path / "raw" / "unetr_pp_raw_data" / TASK / "labelsTr", merged, num_processes=1)
    assert before["pooled"]["mean"] == together["mean"]
    assert before["pooled"]["foreground_mean"] == together["foreground_mean"]

    post = json.loads((trainer_dir / "postprocessing.json").read_text())
    assert post["folds"] == ["0", "1", "2", "3"] and post["num_cases"] == 5
    assert post["foreground"]["applied"] is False  # fold 3: label 1's cube is the largest, label 2 would vanish
    assert post["steps"] == [{"name": "organ_a", "ids": [1]}]
    after = report["after_postprocessing"]
    assert after["per_fold"]["0"]["mean"]["organ_a"]["Dice"] == 1.0
    assert after["pooled"]["mean"]["organ_b"] == before["pooled"]["mean"]["organ_b"]
    assert post["cv_before"] == before["pooled"]["foreground_mean"]
    assert post["cv_after"] == after["pooled"]["foreground_mean"]

    md = (trainer_dir / "cv_summary.md").read_text()
    assert md == captured.out.split("written: ")[0].rstrip("\n") + "\n"
    assert "## DSC (%) before postprocessing" in md and "## DSC (%) after postprocessing" in md
    row = next(line for line in md.splitlines() if line.startswith("| mean ± std over 4 folds |"))
    assert f"{np.mean(fold_b) * 100:.2f} ± {np.std(fold_b) * 100:.2f}" in row
    assert "fold 4 left out: unfinished" in md and "organ_a [1]: applied" in md
    with open(trainer_dir / "cv_summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pooled_row = next(r for r in rows if (r["stage"], r["scope"], r["target"]) ==
                      ("before_postprocessing", "pooled", "organ_b"))
    assert float(pooled_row["Dice"]) == pytest.approx(np.mean(pooled_b)) and pooled_row["n"] == "5"


def test_fold_subset_without_postprocessing(cv_env, capsys):
    _, trainer_dir = cv_env
    assert main(["--cv", "-t", "901", "-tr", TRAINER, "--folds", "2", "3", "--no_postprocessing", "-np", "1"]) == 0
    report = json.loads((trainer_dir / "cv_summary.json").read_text())
    assert report["folds_used"] == ["2", "3"] and report["folds_skipped"] == {}
    assert report["postprocessing"] is None and report["after_postprocessing"] is None
    assert not (trainer_dir / "postprocessing.json").exists()
    assert report["before_postprocessing"]["fold_mean"]["mean"]["organ_b"]["Dice"] == pytest.approx(
        (DICE_B[2] + DICE_B[3]) / 2)


def test_cv_errors(cv_env, capsys):
    tmp_path, trainer_dir = cv_env
    assert main(["--cv", "-t", TASK, "-tr", TRAINER, "--folds", "4", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no finished fold among 4 7" in err and "fold 7: missing" in err
    assert main(["--cv", "-t", TASK, "-tr", "other_trainer"]) == 2
    assert "no trainer folder" in capsys.readouterr().err
    assert main(["--cv", "-t", TASK, "-tr", TRAINER, "-ref", "x"]) == 2
    assert "-ref cannot be used with it" in capsys.readouterr().err
    assert main(["-t", TASK, "-tr", TRAINER]) == 2
    assert "only go with --cv" in capsys.readouterr().err
    assert main(["--cv", "-t", TASK, "-tr", TRAINER, "--folds", "1", "1"]) == 2
    assert "lists a fold twice" in capsys.readouterr().err
    assert not (trainer_dir / "cv_summary.json").exists()


def test_fold_with_cases_missing_from_validation_raw(cv_env):
    tmp_path, trainer_dir = cv_env
    splits = [{"train": [], "val": ["c0"]}, {"train": [], "val": ["c1", "c1b", "c9", "c8"]}]
    save_json(splits, tmp_path / "pre" / TASK / "splits_final.json")
    expected = [s["val"] for s in splits]
    assert fold_problem(trainer_dir, "0", expected, ".nii.gz") is None
    assert fold_problem(trainer_dir, "1", expected, ".nii.gz") == (
        "unfinished: validation_raw lacks 2 validation case(s) of splits_final.json: c9, c8")
    assert main(["--cv", "-t", TASK, "-tr", TRAINER, "--folds", "0", "1", "--no_postprocessing", "-np", "1"]) == 0
    assert json.loads((trainer_dir / "cv_summary.json").read_text())["folds_used"] == ["0"]
