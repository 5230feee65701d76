"""Every converter's output passes the raw-task integrity verifier (unetr_pp.dataset.integrity)."""
from __future__ import annotations

import pytest
from convert_fakes import make_acdc, make_brats, make_msd, make_synapse
from release_fakes import make_amos, make_btcv_json, make_feta, make_flare, make_kits, make_lits, make_tcia

from unetr_pp.dataset import integrity
from unetr_pp.dataset.converters import convert_task

FAKES = {
    "synapse": lambda root: make_synapse(root, numbers=(1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38, 5)),
    "btcv": make_synapse,
    "acdc": make_acdc,
    "brats": make_brats,
    "msd": lambda root: make_msd(root, "Task01_BrainTumour", channels=4, test_labels=True),
    "amos": make_amos,
    "flare21": make_flare,
    "feta": make_feta,
    "kits19": make_kits,
    "lits": make_lits,
    "tcia_pancreas": make_tcia,
    "btcv_json": make_btcv_json,
}


@pytest.mark.parametrize("source", sorted(FAKES))
def test_converted_task_passes_integrity_check(source, tmp_path):
    raw = FAKES[source](tmp_path / "download")
    result = convert_task(source, raw, output_dir=tmp_path / "out", num_processes=1)
    assert integrity.find_integrity_problems(result.path, num_processes=1) == []
    info = integrity.verify_dataset_integrity(result.path, num_processes=1)
    assert len(info.training_cases) == result.num_training and len(info.test_cases) == result.num_test
