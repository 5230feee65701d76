"""training_scripts/ and evaluation_scripts/: syntax, usage, missing-data message from any cwd, and the quickstart."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = {  # name -> (task, convert command, DATASET_<Title>)
    "synapse": ("Task002_Synapse", "unetr_pp_convert_task --source synapse -i /path/to/RawData", "Synapse"),
    "acdc": ("Task001_ACDC", "unetr_pp_convert_task --source acdc -i /path/to/ACDC/database", "Acdc"),
    "lung": ("Task006_Lung", "unetr_pp_convert_task --source msd -i /path/to/Task06_Lung", "Lungs"),
    "tumor": ("Task003_tumor", "unetr_pp_convert_task --source brats -i /path/to/BraTS", "Tumor"),
}
KINDS = {"training": "run_training_{}.sh", "evaluation": "run_evaluation_{}.sh"}
SCRIPTS = sorted((REPO / "training_scripts").glob("*.sh")) + sorted((REPO / "evaluation_scripts").glob("*.sh"))


def script_path(kind: str, name: str) -> Path:
    return REPO / f"{kind}_scripts" / KINDS[kind].format(name)


def run_script(path: Path, cwd: Path, env: dict[str, str], *args: str,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a script with bash from `cwd` (relative path when cwd is the repo root or the script's folder)."""
    shown = os.path.relpath(path, cwd) if cwd in (REPO, path.parent) else str(path)
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("DATASET_DIR", "OUTPUT_DIR", "FOLD", "TRAINER", "DEVICE", "RESULTS_FOLDER")
                and not k.startswith("DEMO_")}
    full_env.update({"PYTHON": sys.executable, **env})
    return subprocess.run(["bash", shown, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_every_script_is_there():
    names = {p.name for p in SCRIPTS}
    for name in (*DATASETS, "demo"):
        for pattern in KINDS.values():
            assert pattern.format(name) in names
    assert "_env.sh" in names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(path):
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [*DATASETS, "demo"])
def test_usage(kind, name, tmp_path):
    path = script_path(kind, name)
    result = run_script(path, REPO, {"DATASET_DIR": str(tmp_path / "data"), "OUTPUT_DIR": str(tmp_path / "out")}, "-h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: bash {kind}_scripts/{path.name} [-h]")
    task = DATASETS[name][0] if name in DATASETS else "Task990_Demo"
    assert f"{tmp_path / 'data'}/unetr_pp_raw/unetr_pp_raw_data" not in result.stdout  # defaults, not overrides
    for text in ("DATASET_DIR", "OUTPUT_DIR", "PYTHON", "FOLD", "TRAINER", "DEVICE", task):
        assert text in result.stdout
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["repo_root", "script_folder"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DATASETS)
def test_missing_raw_task(name, kind, where, tmp_path):
    task, convert, _ = DATASETS[name]
    path = script_path(kind, name)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script(path, REPO if where == "repo_root" else path.parent,
                        {"DATASET_DIR": str(empty), "OUTPUT_DIR": str(tmp_path / "out")})
    assert result.returncode == 1
    raw = f"{empty}/unetr_pp_raw/unetr_pp_raw_data"
    assert result.stderr.startswith(f"error: raw task not found: {raw}/{task} (no dataset.json)\n")
    assert f"  {convert} -o {raw}\n" in result.stderr
    assert list(empty.iterdir()) == [] and not (tmp_path / "out").exists()


def test_default_folders_are_in_the_repo_root(tmp_path):
    """Without DATASET_DIR the scripts look in <repo>/DATASET_<Name>, whatever the cwd."""
    for name, (task, _, title) in DATASETS.items():
        if (REPO / f"DATASET_{title}" / "unetr_pp_raw" / "unetr_pp_raw_data" / task / "dataset.json").exists():
            continue  # real data present: the script would start working
        result = run_script(script_path("training", name), tmp_path, {})
        assert result.returncode == 1
        assert f"not found: {REPO}/DATASET_{title}/unetr_pp_raw/unetr_pp_raw_data/{task} " in result.stderr


def test_relative_dataset_dir_is_taken_from_the_cwd(tmp_path):
    result = run_script(script_path("evaluation", "acdc"), tmp_path, {"DATASET_DIR": "rel", "OUTPUT_DIR": "out"})
    assert result.returncode == 1
    assert f"not found: {tmp_path}/rel/unetr_pp_raw/unetr_pp_raw_data/Task001_ACDC " in result.stderr


def test_demo_evaluation_without_the_demo_task(tmp_path):
    result = run_script(script_path("evaluation", "demo"), REPO,
                        {"DATASET_DIR": str(tmp_path), "OUTPUT_DIR": str(tmp_path / "out")})
    assert result.returncode == 1
    assert "Task990_Demo (no dataset.json)" in result.stderr
    assert "bash training_scripts/run_training_demo.sh" in result.stderr


def test_evaluation_without_a_trained_model(tmp_path):
    task_dir = tmp_path / "unetr_pp_raw" / "unetr_pp_raw_data" / "Task001_ACDC"
    task_dir.mkdir(parents=True)
    (task_dir / "dataset.json").write_text("{}")
    result = run_script(script_path("evaluation", "acdc"), REPO,
                        {"DATASET_DIR": str(tmp_path), "OUTPUT_DIR": str(tmp_path / "out"), "DEVICE": "cpu"})
    assert result.returncode == 1
    fold = tmp_path / "out" / "unetr_pp" / "3d_fullres" / "Task001_ACDC" / "unetr_pp_trainer_acdc__unetr_pp_Plansv2.1"
    assert (f"error: no trained model: {fold}/fold_0/model_final_checkpoint.model is missing; train first "
            "(training_scripts/run_training_acdc.sh)") in result.stderr


def test_bad_python_and_bad_budget(tmp_path):
    env = {"DATASET_DIR": str(tmp_path), "OUTPUT_DIR": str(tmp_path / "out")}
    result = run_script(script_path("training", "demo"), REPO, {**env, "PYTHON": str(tmp_path / "nopython")})
    assert result.returncode == 1 and f"python interpreter '{tmp_path}/nopython' not found" in result.stderr
    result = run_script(script_path("training", "demo"), REPO, {**env, "DEMO_EPOCHS": "ten"})
    assert result.returncode == 1 and "DEMO_EPOCHS must be a positive integer, got 'ten'" in result.stderr
    result = run_script(script_path("training", "demo"), REPO, {**env, "DEMO_CASES": "0"})
    assert result.returncode == 1 and "DEMO_CASES must be a positive integer, got '0'" in result.stderr
    assert not (tmp_path / "unetr_pp_raw").exists()


def test_quickstart_end_to_end(tmp_path):
    """The demo script with a tiny budget: demo task, plans, training, prediction, one printed table, summaries."""
    env = {"DATASET_DIR": str(tmp_path / "data"), "OUTPUT_DIR": str(tmp_path / "out"), "DEVICE": "cpu",
           "DEMO_EPOCHS": "1", "DEMO_ITERS": "2", "DEMO_VAL_ITERS": "1", "DEMO_CASES": "5", "DEMO_TEST_CASES": "1",
           "unetr_pp_n_proc_DA": "0"}
    result = run_script(script_path("training", "demo"), REPO / "training_scripts", env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = tmp_path / "out" / "unetr_pp" / "3d_fullres" / "Task990_Demo" / "unetr_pp_trainer__unetr_pp_Plansv2.1"
    fold = model / "fold_0"
    test_pred = model / "test_predictions_fold_0"
    assert (fold / "model_final_checkpoint.model").is_file() and (fold / "progress.png").is_file()
    assert sorted(p.name for p in test_pred.glob("*.nii.gz")) == ["demo_005.nii.gz"]
    summary = json.loads((test_pred / "summary.json").read_text())
    assert [c["case"] for c in summary["metric_per_case"]] == ["demo_005"]
    assert list(summary["mean"]) == ["spleen", "right kidney", "left kidney", "gallbladder", "liver", "stomach",
                                     "aorta", "pancreas"]
    assert result.stdout.count("| DSC (%) |") == 1  # the table is printed once (the test cases)
    assert "validation_raw/summary.json): [table: see summary.md there]" in result.stdout
    assert "# Evaluation (" in result.stdout
    assert f"training curves:     {fold}/progress.png" in result.stdout
    assert f"test evaluation:     {test_pred}/summary.{{md,json,csv}}" in result.stdout
    for name in ("summary.csv", "summary.md"):
        assert (test_pred / name).is_file()
    assert sorted(p.name for p in (test_pred / "plots").iterdir()) == ["demo_005.png", "metrics.png"]
    assert "[demo_005](plots/demo_005.png)" in (test_pred / "summary.md").read_text()
    assert result.stdout.rstrip().splitlines()[-2:] == [f"metric plot:         {test_pred}/plots/metrics.png",
                                                        f"look at a case:      {test_pred}/plots/demo_005.png"]
    assert "warning" not in result.stderr and "note: plots" not in result.stderr  # drawn on the test images


@pytest.mark.parametrize("name", ["acdc", "lung"])
def test_evaluation_falls_back_to_validation_raw(name, tmp_path):
    """No imagesTs/labelsTs: the fold's validation_raw is evaluated with the dataset's protocol, and it says so."""
    import numpy as np

    from unetr_pp.io import Geometry, write_image

    task = DATASETS[name][0]
    raw = tmp_path / "data" / "unetr_pp_raw" / "unetr_pp_raw_data" / task
    labels = {"acdc": {"0": "background", "1": "RV", "2": "Myo", "3": "LV"}, "lung": {"0": "background", "1": "cancer"}}
    (raw / "imagesTs").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({
        "name": task, "labels": labels[name], "modality": {"0": "MRI"}, "numTraining": 2, "tensorImageSize": "3D",
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ("c0", "c1")],
        "test": []}))
    fold = (tmp_path / "out" / "unetr_pp" / "3d_fullres" / task / f"unetr_pp_trainer_{name}__unetr_pp_Plansv2.1"
            / "fold_0")
    (fold / "validation_raw").mkdir(parents=True)
    (fold / "model_final_checkpoint.model").write_bytes(b"not read by this path")
    (fold / "model_final_checkpoint.model.json").write_text("{}")  # ours (a released file would be imported)
    geometry = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    ref = np.zeros((4, 8, 8), np.uint8)
    ref[0:2, 0:4, 0:4] = 1
    pred = ref.copy()
    pred[0:2, 0:4, 0:2] = 0  # label 1: 16 of 32 voxels -> Dice 2/3
    write_image(ref, geometry, raw / "labelsTr" / "c0.nii.gz")
    write_image(ref, geometry, raw / "labelsTr" / "c1.nii.gz")  # in another fold: not evaluated
    write_image(pred, geometry, fold / "validation_raw" / "c0.nii.gz")
    write_image(ref.astype(np.float32) * 100, geometry, raw / "imagesTr" / "c0_0000.nii.gz")
    result = run_script(script_path("evaluation", name), REPO / "evaluation_scripts",
                        {"DATASET_DIR": str(tmp_path / "data"), "OUTPUT_DIR": str(tmp_path / "out"), "DEVICE": "cpu"},
                        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no test images in {raw}/imagesTs: nothing to predict" in result.stdout
    assert (f"no labelsTs in {raw}: evaluating the fold's validation predictions ({fold}/validation_raw) instead"
            in result.stdout)
    summary = json.loads((fold.parent / "validation_evaluation_fold_0" / "summary.json").read_text())
    assert [c["case"] for c in summary["metric_per_case"]] == ["c0"]
    evaluation = fold.parent / "validation_evaluation_fold_0"
    assert result.stdout.rstrip().splitlines()[-1] == f"look at a case:      {evaluation}/plots/c0.png"
    assert "note: plots" not in result.stderr and "warning" not in result.stderr  # drawn on imagesTr/c0_0000
    first = {"acdc": "RV", "lung": "cancer"}[name]
    assert summary["protocol"] == {"acdc": "acdc", "lung": "dataset.json"}[name]
    assert summary["mean"][first]["Dice"] == pytest.approx(2 / 3)


def run_filter(shell: str, tmp_path: Path) -> str:
    env_sh = REPO / "training_scripts" / "_env.sh"
    result = subprocess.run(["bash", "-c", f"source {env_sh}; {shell}"], capture_output=True, text=True, timeout=30,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_validation_table_filter(tmp_path):
    log = ("start\n2026: validation summary (/f/validation_raw/summary.json):\n# Evaluation (x, 2 cases)\n\n"
           "| DSC (%) | spleen |\n|---|---:|\n- HD95 unit: mm\n2026: validation mean foreground Dice 0.5; curves\nend")
    (tmp_path / "log.txt").write_text(log)
    assert run_filter("up_hide_validation_table < log.txt", tmp_path) == (
        "start\n2026: validation summary (/f/validation_raw/summary.json): [table: see summary.md there]\n"
        "2026: validation mean foreground Dice 0.5; curves\nend\n")
    # without the closing line, at most 60 lines are hidden
    out = run_filter("(echo 'validation summary (x):'; seq 1 100) | up_hide_validation_table", tmp_path)
    assert out.splitlines()[1:3] == ["61", "62"] and out.splitlines()[-1] == "100"


def test_validation_table_filter_passes_lines_on_at_once(tmp_path):
    """Each line goes out as soon as it comes in (the producer waits for the consumer; buffering would hang)."""
    shell = ("(echo first; while [ ! -f seen ]; do sleep 0.05; done; echo second) | up_hide_validation_table | "
             "(read -r line; echo \"got $line\"; touch seen; cat)")
    assert run_filter(shell, tmp_path) == "got first\nsecond\n"
