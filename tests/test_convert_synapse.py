"""Synapse / BTCV converter and the `unetr_pp_convert_task` CLI on a tiny fake Synapse release."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
from convert_fakes import (
    DIRECTION, ORIGIN_XYZ, SPACING_XYZ, conversion_error, make_synapse, read, tree_digest, volume, write,
)

from unetr_pp.cli.convert_task import main
from unetr_pp.dataset.converters import convert_task, jobs
from unetr_pp.dataset.converters.synapse import BTCV_LABELS, SYNAPSE_VAL_CASES
from unetr_pp.io import load_dataset_json, read_image
from unetr_pp.utilities import parallel
from unetr_pp.utilities.errors import UnetrPPError


@pytest.fixture(scope="module")
def synapse_raw(tmp_path_factory):
    return make_synapse(tmp_path_factory.mktemp("download"))


@pytest.fixture(scope="module")
def synapse_task(synapse_raw, tmp_path_factory):
    before = tree_digest(synapse_raw)
    out = tmp_path_factory.mktemp("out")
    assert main(["--source", "synapse", "-i", str(synapse_raw), "-o", str(out), "-np", "1"]) == 0
    assert tree_digest(synapse_raw) == before, "the raw input was modified"
    return out / "Task002_Synapse"


def test_synapse_layout_labels_and_split(synapse_task):
    info = load_dataset_json(synapse_task)
    assert info.channel_names == {0: "CT"}
    assert info.labels == BTCV_LABELS
    assert info.labels[10] == "portal vein and splenic vein" and info.labels[13] == "left adrenal gland"
    ids = [c.case_id for c in info.training_cases]
    assert ids == sorted(f"img{n:04d}" for n in (1, 2, 3, 4, 5, 6, 8, 22, 25, 29, 32, 35, 36, 38))
    for case in info.training_cases:
        assert case.images[0].name == f"{case.case_id}_0000.nii.gz" and case.images[0].is_file()
        assert case.label.name == f"{case.case_id}.nii.gz" and case.label.is_file()
    assert sorted(c.case_id for c in info.test_cases) == sorted(SYNAPSE_VAL_CASES)
    assert all(c.images[0].is_file() and (synapse_task / "labelsTs" / f"{c.case_id}.nii.gz").is_file()
               for c in info.test_cases)
    split = json.loads((synapse_task / "splits_synapse.json").read_text())
    assert split == [{"train": ["img0005", "img0006"], "val": list(SYNAPSE_VAL_CASES)}]
    conversion = info.raw["unetr_pp_conversion"]
    assert conversion["evaluation_protocol"] == "synapse" and conversion["fixed_split_file"] == "splits_synapse.json"
    assert sorted(p.name for p in synapse_task.iterdir()) == [
        "dataset.json", "imagesTr", "imagesTs", "labelsTr", "labelsTs", "splits_synapse.json"]


def test_synapse_voxels_and_geometry_preserved(synapse_task, synapse_raw):
    array, geometry = read_image(synapse_task / "imagesTr" / "img0022_0000.nii.gz")
    np.testing.assert_array_equal(array, volume(22))
    assert geometry.spacing == pytest.approx(tuple(reversed(SPACING_XYZ)))
    assert geometry.itk_origin == pytest.approx(ORIGIN_XYZ)
    assert geometry.itk_direction == pytest.approx(DIRECTION)
    label, _ = read(synapse_task / "labelsTr" / "img0022.nii.gz")
    raw_label, _ = read(synapse_raw / "RawData" / "Training" / "label" / "label0022.nii.gz")
    np.testing.assert_array_equal(label, raw_label)
    assert set(np.unique(label)) == set(range(14))


def test_btcv_uses_challenge_test_set(synapse_raw, tmp_path):
    result = convert_task("btcv", synapse_raw / "RawData", output_dir=tmp_path, num_processes=1)
    assert result.path == tmp_path / "Task017_BTCV"
    info = load_dataset_json(result.path)
    assert len(info.training_cases) == 14
    assert [c.case_id for c in info.test_cases] == ["img0061", "img0062"]
    assert info.raw["unetr_pp_conversion"]["evaluation_protocol"] == "btcv"
    assert not (result.path / "labelsTs").exists() and not (result.path / "splits_synapse.json").exists()


def test_existing_task_refused_then_overwritten(synapse_raw, tmp_path, capsys):
    args = ["--source", "btcv", "-i", str(synapse_raw), "-o", str(tmp_path), "-t", "2", "--name", "Synapse",
            "-np", "2"]
    assert main(args) == 0
    marker = tmp_path / "Task002_Synapse" / "imagesTr" / "img0001_0000.nii.gz"
    assert marker.is_file()
    assert main(args) == 2
    assert "Task002_Synapse: task already exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Task002_Synapse"], "temp folders left behind"


def test_default_output_is_raw_data_folder(synapse_raw, env_folders):
    result = convert_task("synapse", synapse_raw, num_processes=1)
    assert result.path == env_folders["unetr_pp_raw_data_base"] / "unetr_pp_raw_data" / "Task002_Synapse"
    assert (result.num_training, result.num_test) == (14, 12)


def test_wrong_layout_lists_every_problem(tmp_path):
    raw = tmp_path / "RawData"
    write(volume(1), raw / "Training" / "img" / "img0001.nii.gz")
    write(volume(2), raw / "Training" / "img" / "img0002.nii.gz")
    write(volume(3), raw / "Training" / "label" / "label0003.nii.gz")
    write(volume(2)[:3], raw / "Training" / "label" / "label0002.nii.gz")
    (raw / "Training" / "img" / "img0004.nii.gz").write_bytes(b"not an image")
    (raw / "Training" / "label" / "label0004.nii.gz").write_bytes(b"not an image")
    write(volume(5), raw / "Training" / "img" / "scan5.nii.gz")
    text = conversion_error("btcv", raw, tmp_path / "out")
    assert "not a valid 'synapse/btcv' raw folder: 6 problem(s) found" in text
    assert "img0001.nii.gz: no matching label Training/label/label0001.nii.gz" in text
    assert "label0003.nii.gz: no matching image Training/img/img0003.nii.gz" in text
    assert "label0002.nii.gz: shape [3, 8, 8] differs from img0002.nii.gz [6, 8, 8]" in text
    assert "img0004.nii.gz: unreadable image header" in text and "label0004.nii.gz: unreadable image header" in text
    assert "scan5.nii.gz: unexpected file name (expected imgNNNN.nii.gz)" in text
    assert "expected layout:" in text and "Training/label/label0001.nii.gz" in text


def test_missing_folders_and_fixed_split_cases(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnetrPPError, match=r"(?s)Training/img/: folder not found.*Training/label/: folder not found"):
        convert_task("synapse", tmp_path / "empty", output_dir=tmp_path / "out")
    raw = make_synapse(tmp_path / "few", numbers=(1, 5), tests=())
    with pytest.raises(UnetrPPError, match="fixed Synapse split needs cases img0002, img0003"):
        convert_task("synapse", raw, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_label_values_abort_without_half_task(tmp_path):
    raw = make_synapse(tmp_path / "raw", numbers=(1, 2), tests=())
    write(np.full((6, 8, 8), 17, np.uint8), raw / "RawData" / "Training" / "label" / "label0002.nii.gz")
    out = tmp_path / "out"
    with pytest.raises(UnetrPPError, match=r"label0002.nii.gz: unexpected label values \[17\]"):
        convert_task("btcv", raw, output_dir=out, num_processes=1)
    assert list(out.iterdir()) == []


def test_cli_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unetr_pp.cli.convert_task", "--source", "msd", "-i",
                           str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing'}: raw folder not found"


def test_dataset_synapse_readme_command_fills_the_script_layout(synapse_raw, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "DATASET_Synapse" / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("unetr_pp_convert_task --source synapse"))
    shutil.copytree(repo / "DATASET_Synapse", tmp_path / "DATASET_Synapse")
    argv = command.replace("/path/to/RawData", str(synapse_raw / "RawData")).split()[1:]
    argv = [str(tmp_path / a) if a.startswith("DATASET_Synapse/") else a for a in argv]
    assert main(argv + ["-np", "1"]) == 0
    task = tmp_path / "DATASET_Synapse" / "unetr_pp_raw" / "unetr_pp_raw_data" / "Task002_Synapse"
    assert load_dataset_json(task).num_channels == 1
    for folder in ("unetr_pp_raw/unetr_pp_cropped_data", "unetr_pp_preprocessed", "unetr_pp_trained_models"):
        assert (tmp_path / "DATASET_Synapse" / folder).is_dir()


def test_cli_argument_errors(synapse_raw, tmp_path, capsys):
    base = ["--source", "btcv", "-i", str(synapse_raw), "-o", str(tmp_path)]
    assert main(base + ["--name", "my task"]) == 2
    assert "task name 'my task' may only hold letters, digits" in capsys.readouterr().err
    assert main(base + ["-t", "1000"]) == 2
    assert "task id 1000 must be between 0 and 999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["-t", "two"])
    assert "task id must be a number such as 2, got 'two'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["-np", "0"])
    assert "-np must be at least 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_dead_worker_process_is_a_clear_error(synapse_raw, tmp_path, monkeypatch):
    def die(job, root):
        raise BrokenProcessPool("worker killed")

    monkeypatch.setattr(jobs, "execute", die)
    monkeypatch.setattr(parallel, "spawn_pool", _InlineExecutor)
    with pytest.raises(UnetrPPError, match=r"worker process died \(out of memory\?\).*retry with fewer processes"):
        convert_task("btcv", synapse_raw, output_dir=tmp_path, num_processes=2)
    assert list(tmp_path.iterdir()) == []


class _InlineExecutor(ThreadPoolExecutor):
    """Stands in for the process pool: runs jobs in a thread so a patched `execute` is used."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)


def test_origin_mismatch_is_a_warning(tmp_path, capsys):
    raw = make_synapse(tmp_path / "raw", numbers=(1, 2), tests=())
    shifted = (ORIGIN_XYZ[0] + 0.5, ORIGIN_XYZ[1], ORIGIN_XYZ[2])
    write(volume(7).clip(0, 13).astype(np.uint8), raw / "RawData" / "Training" / "label" / "label0002.nii.gz",
          origin=shifted)
    assert main(["--source", "btcv", "-i", str(raw), "-o", str(tmp_path / "out"), "-np", "1"]) == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "label0002.nii.gz: origin [-171.8, -168.9, -412.5] differs from img0002.nii.gz [-172.3, -168.9, -412.5]" in out
    assert "wrote " in out and "Task017_BTCV: 2 training case(s), 0 test case(s)" in out
