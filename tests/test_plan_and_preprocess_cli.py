"""unetr_pp_plan_and_preprocess: outputs, options, and every bad input -> one line per problem, exit != 0,
no partial preprocessed folder."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from unetr_pp.cli.plan_and_preprocess import main
from unetr_pp.utilities.files import load_json

from prep_tasks import make_task


def _task(env_folders, n_cases=2):
    return make_task(env_folders["unetr_pp_raw_data_base"], n_cases=n_cases)


def _main(argv):
    return main(argv + ["-tf", "1", "-tl", "1"])


def _no_output(env_folders):
    return not any(env_folders["unetr_pp_preprocessed"].iterdir())


def test_cli_writes_fingerprint_plans_and_data(env_folders, capsys):
    _task(env_folders)
    assert _main(["-t", "901", "--preset", "demo", "--override", "batch_size=3"]) == 0
    out = env_folders["unetr_pp_preprocessed"] / "Task901_Tiny"
    plans = load_json(out / "unetr_pp_Plansv2.1.json")
    config = plans["configurations"]["3d_fullres"]
    assert config["patch_size"] == [32, 64, 64] and config["batch_size"] == 3
    assert plans["preset"] == "demo" and plans["overrides"] == {"batch_size": 3}
    assert load_json(out / "dataset_fingerprint.json")["case_ids"] == ["case_000", "case_001"]
    assert sorted(p.name for p in (out / config["data_identifier"]).iterdir()) == sorted(
        f"case_00{i}{s}" for i in range(2) for s in (".npy", "_seg.npy", ".json", "_fg.npz"))
    assert "patch [32, 64, 64], batch 3" in capsys.readouterr().out


def test_no_preprocessing_and_plans_identifier(env_folders):
    _task(env_folders)
    assert _main(["-t", "Task901_Tiny", "--no_preprocessing", "-p", "myplans"]) == 0
    out = env_folders["unetr_pp_preprocessed"] / "Task901_Tiny"
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "dataset_fingerprint.json", "myplans.json"]


def test_module_entry_point(env_folders):
    _task(env_folders, 1)
    result = subprocess.run([sys.executable, "-m", "unetr_pp.cli.plan_and_preprocess", "-t", "901",
                             "--no_preprocessing", "-c", "3d_lowres"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert result.returncode == 0, result.stderr
    assert "done:" in result.stdout


def _fails(capsys, argv, *needles):
    assert _main(argv) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_empty_images_folder(env_folders, capsys):
    task = _task(env_folders)
    for p in (task / "imagesTr").iterdir():
        p.unlink()
    obj = json.loads((task / "dataset.json").read_text())
    obj.update(training=[], numTraining=0)
    (task / "dataset.json").write_text(json.dumps(obj))
    _fails(capsys, ["-t", "901"], "imagesTr", "no training cases")
    assert _no_output(env_folders)


def test_corrupt_and_truncated_images_are_all_listed(env_folders, capsys):
    task = _task(env_folders, 3)
    (task / "imagesTr" / "case_000_0000.nii.gz").write_bytes(b"not an image at all")
    label = task / "labelsTr" / "case_002.nii.gz"
    raw = gzip.decompress(label.read_bytes())
    label.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    err = _fails(capsys, ["-t", "901"], "2 problem(s)", "case_000_0000.nii.gz", "case_002.nii.gz")
    assert len([line for line in err.splitlines() if line.startswith("  - ")]) == 2
    assert _no_output(env_folders)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    (json.dumps({"name": "x", "labels": {"0": "background"}}), "missing keys"),
])
def test_invalid_dataset_json(env_folders, capsys, content, needle):
    task = _task(env_folders, 1)
    (task / "dataset.json").write_text(content)
    _fails(capsys, ["-t", "901"], "dataset.json", needle)
    assert _no_output(env_folders)


def test_unset_environment_variable(env_folders, capsys, monkeypatch):
    _task(env_folders, 1)
    monkeypatch.delenv("unetr_pp_preprocessed")
    _fails(capsys, ["-t", "901"], "unetr_pp_preprocessed is not set")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_folder(env_folders, capsys):
    _task(env_folders, 1)
    pre = env_folders["unetr_pp_preprocessed"]
    pre.chmod(0o500)
    try:
        _fails(capsys, ["-t", "901"], "cannot be written")
    finally:
        pre.chmod(0o700)


def test_output_path_that_is_a_file(env_folders, capsys, monkeypatch):
    _task(env_folders, 1)
    blocker = env_folders["unetr_pp_preprocessed"] / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("unetr_pp_preprocessed", str(blocker))
    _fails(capsys, ["-t", "901"], "not_a_folder", "cannot be written")


def test_bad_override_and_unknown_task(env_folders, capsys):
    _task(env_folders, 1)
    _fails(capsys, ["-t", "901", "--override", "patch_size=[31,64,64]", "--override", "batch_size=0",
                    "--override", "pool_op_kernel_sizes=[[2,2,2]]"],
           "2 problem(s)", "not divisible", "batch_size must be a positive integer")
    assert _no_output(env_folders)
    _fails(capsys, ["-t", "999"], "no task with id 999")


def test_verify_dataset_integrity_runs_first(env_folders, capsys):
    task = _task(env_folders, 2)
    assert _main(["-t", "901", "--verify_dataset_integrity", "--no_preprocessing"]) == 0
    (task / "labelsTr" / "case_001.nii.gz").unlink()
    _fails(capsys, ["-t", "901", "--verify_dataset_integrity"], "integrity check failed", "case_001")


def test_missing_image_file_is_named(env_folders, capsys):
    task = _task(env_folders, 2)
    (task / "imagesTr" / "case_001_0000.nii.gz").unlink()
    _fails(capsys, ["-t", "901"], "case_001_0000.nii.gz")
    assert _no_output(env_folders)
