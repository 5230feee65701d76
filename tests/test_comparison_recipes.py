"""unetr_pp_compare --recipe seed on the tiny training task: each network trained under its own recipe, in its
own folder, and the report names the recipe of every row."""
from __future__ import annotations

import json

from unetr_pp.cli.compare import main

from training_tasks import TASK, tiny_task, tiny_template  # noqa: F401 (fixtures)

PLANS_ID = "unetr_pp_Plansv2.1"


def test_compare_seed_recipe_on_a_tiny_task(tiny_task, monkeypatch, capsys):
    monkeypatch.setenv("unetr_pp_n_proc_DA", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = ["-t", "902", "--networks", "unetr", "--budget", "1x1", "--val_iters", "1", "--disable_tta",
            "--device", "cpu", "--recipe", "seed"]
    assert main(args) == 0
    task_dir = tiny_task["RESULTS_FOLDER"] / "unetr_pp" / "3d_fullres" / TASK
    data = json.loads((task_dir / "comparison_fold0_seed" / "comparison.json").read_text())
    assert data["recipe"] == "seed"
    assert [(row["network"], row["recipe"], row["status"]) for row in data["networks"]] == [
        ("unetr", "unetr_btcv", "trained")]
    seed_fold = task_dir / f"unetr_trainer-seed__{PLANS_ID}" / "fold_0"
    assert data["networks"][0]["summary_file"] == str(seed_fold / "validation_raw" / "summary.json")
    log = next(seed_fold.glob("training_log_*.txt")).read_text()
    assert "recipe unetr_btcv (" in log and "batch 4 (4 per process)" in log
    assert not (task_dir / f"unetr_trainer__{PLANS_ID}").exists()
    md = (task_dir / "comparison_fold0_seed" / "comparison.md").read_text()
    assert "| unetr | unetr_btcv |" in md
    assert not (task_dir / "comparison_fold0").exists()
