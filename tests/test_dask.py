"""--dask: per-case work on a Dask LocalCluster gives byte-identical outputs; a lost worker is retried."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import distributed
import numpy as np
import pytest

from unetr_pp.cli.evaluate import main as evaluate_main
from unetr_pp.cli.plan_and_preprocess import main as plan_main
from unetr_pp.cli.predict import main as predict_main
from unetr_pp.io import Geometry, write_image
from unetr_pp.utilities.parallel import dask_runner, parallel_map

from prep_tasks import make_task
from test_predictor_e2e import TRAINER, _intensity_fold, make_raw_case


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as c:
        yield c


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_plan_and_preprocess_identical(env_folders, cluster):
    make_task(env_folders["unetr_pp_raw_data_base"], n_cases=3)
    out = env_folders["unetr_pp_preprocessed"] / "Task901_Tiny"
    argv = ["-t", "901", "--verify_dataset_integrity", "--preset", "demo", "-tf", "2", "-tl", "2"]
    assert plan_main(argv) == 0
    local = _files(out)
    shutil.rmtree(out)
    shutil.rmtree(env_folders["unetr_pp_raw_data_base"] / "unetr_pp_cropped_data")  # crop again, on the cluster
    assert plan_main(argv + ["--dask", cluster.scheduler_address]) == 0
    remote = _files(out)
    assert sorted(remote) == sorted(local) and any(k.endswith(".npz") or k.endswith(".npy") for k in local)
    assert remote == local


def test_evaluate_identical(tmp_path, cluster):
    rng = np.random.default_rng(0)
    geometry = Geometry((2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    for folder in ("ref", "pred"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        label = np.zeros((12, 20, 20), dtype=np.uint8)
        label[2:9, 4:15, 5:16] = 1
        label[4:7, 8:12, 8:12] = 2
        noisy = np.where(rng.random(label.shape) < 0.05, rng.integers(0, 3, label.shape), label).astype(np.uint8)
        write_image(label, geometry, tmp_path / "ref" / f"case_{i}.nii.gz")
        write_image(noisy, geometry, tmp_path / "pred" / f"case_{i}.nii.gz")
    argv = ["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-np", "2"]
    assert evaluate_main(argv + ["-o", str(tmp_path / "local")]) == 0
    assert evaluate_main(argv + ["-o", str(tmp_path / "dask"), "--dask", cluster.scheduler_address]) == 0
    local, remote = _files(tmp_path / "local"), _files(tmp_path / "dask")
    assert sorted(local) == ["summary.csv", "summary.json", "summary.md"] and remote == local


def test_predict_identical(tmp_path, env_folders, monkeypatch, cluster):
    _intensity_fold(env_folders, monkeypatch)  # the network runs here; preprocessing and export on the cluster
    (tmp_path / "in").mkdir()
    for i in range(2):
        make_raw_case(tmp_path / "in", f"case_{i}", i)
    argv = ["-i", str(tmp_path / "in"), "-t", "3", "-tr", TRAINER, "-f", "0", "-chk", "model_best", "-npp", "1",
            "-nps", "1", "--disable_tta", "--device", "cpu"]
    assert predict_main(argv + ["-o", str(tmp_path / "local")]) == 0
    assert predict_main(argv + ["-o", str(tmp_path / "dask"), "--dask", cluster.scheduler_address]) == 0
    local, remote = _files(tmp_path / "local"), _files(tmp_path / "dask")
    assert sorted(local) == ["case_0.nii.gz", "case_1.nii.gz"] and remote == local


def _die_once(args: tuple[str, int]) -> int:
    marker, x = args
    if x == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return x * x


def test_lost_worker_is_retried(tmp_path, cluster):
    marker = str(tmp_path / "died")
    with dask_runner(cluster.scheduler_address):
        result = parallel_map(_die_once, [(marker, i) for i in range(4)], 2, "squares", "item")
    assert os.path.exists(marker)
    assert result == [0, 1, 4, 9]


def test_dask_needs_reachable_scheduler():
    from unetr_pp.utilities.errors import UnetrPPError
    with pytest.raises(UnetrPPError, match="--dask"):
        with dask_runner("tcp://127.0.0.1:1"):
            pass
