"""--dask: per-case work on a Dask LocalCluster gives byte-identical outputs; a lost worker is retried."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import distributed

from unetr_pp.cli.plan_and_preprocess import main as plan_main
from unetr_pp.utilities.parallel import dask_runner, parallel_map

from prep_tasks import make_task


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
    assert plan_main(argv + ["--dask", cluster.scheduler_address]) == 0
    remote = _files(out)
    assert sorted(remote) == sorted(local) and any(k.endswith(".npz") or k.endswith(".npy") for k in local)
    assert remote == local


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
