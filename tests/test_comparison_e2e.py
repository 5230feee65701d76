"""unetr_pp_compare end to end on a tiny demo task: two architectures trained, tabulated, then reused."""
from __future__ import annotations

import json
import os
import subprocess
import sys

PLANS_ID = "unetr_pp_Plansv2.1"


def run_cli(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", f"unetr_pp.cli.{module}", *args], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_compare_two_networks_then_reuse(tmp_path):
    env = {**os.environ, "unetr_pp_n_proc_DA": "0", "unetr_pp_raw_data_base": str(tmp_path / "raw"),
           "unetr_pp_preprocessed": str(tmp_path / "pre"), "RESULTS_FOLDER": str(tmp_path / "out")}
    run_cli("make_demo_task", env, "-o", str(tmp_path / "raw" / "unetr_pp_raw_data"), "--cases", "5",
            "--test_cases", "0")
    run_cli("plan_and_preprocess", env, "-t", "990", "--preset", "demo", "-c", "3d_fullres", "-tf", "2")
    args = ("-t", "990", "--networks", "nnunet", "unetr_pp", "--budget", "1x2", "--val_iters", "1", "--disable_tta",
            "--device", "cpu")
    first = run_cli("compare", env, *args)
    task_dir = tmp_path / "out" / "unetr_pp" / "3d_fullres" / "Task990_Demo"
    out = task_dir / "comparison_fold0"
    data = json.loads((out / "comparison.json").read_text())
    assert [row["network"] for row in data["networks"]] == ["nnunet", "unetr_pp"]
    assert [row["status"] for row in data["networks"]] == ["trained", "trained"]
    assert data["budget"] == {"epochs": 1, "iters_per_epoch": 2, "val_iters": 1, "val_disable_tta": True}
    for row in data["networks"]:
        fold = task_dir / f"{row['network']}_trainer__{PLANS_ID}" / "fold_0"
        summary = json.loads((fold / "validation_raw" / "summary.json").read_text())
        assert row["mean_dice"] == summary["foreground_mean"]["Dice"]
        assert row["dice"] == {name: m["Dice"] for name, m in summary["mean"].items()}
        assert row["params"] > 0 and row["macs"] > 0
    md = (out / "comparison.md").read_text()
    assert "| nnunet |" in md and "| unetr_pp |" in md and md in first.stdout
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"

    checkpoints = [task_dir / f"{n}_trainer__{PLANS_ID}" / "fold_0" / "model_final_checkpoint.model"
                   for n in ("nnunet", "unetr_pp")]
    mtimes = [p.stat().st_mtime_ns for p in checkpoints]
    second = run_cli("compare", env, *args)
    assert [p.stat().st_mtime_ns for p in checkpoints] == mtimes
    assert second.stdout.count("reusing (finished with the same budget") == 2
    data2 = json.loads((out / "comparison.json").read_text())
    assert [row["status"] for row in data2["networks"]] == ["reused", "reused"]
    assert [row["mean_dice"] for row in data2["networks"]] == [row["mean_dice"] for row in data["networks"]]
