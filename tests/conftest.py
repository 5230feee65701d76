"""Shared fixtures: keep torch single-threaded per test process and isolate the env folders."""
from __future__ import annotations

import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a core dependency
    pass


@pytest.fixture
def env_folders(tmp_path, monkeypatch):
    """Point the three unetr_pp folder variables at fresh temporary folders."""
    folders = {
        "unetr_pp_raw_data_base": tmp_path / "raw",
        "unetr_pp_preprocessed": tmp_path / "preprocessed",
        "RESULTS_FOLDER": tmp_path / "results",
    }
    for var, folder in folders.items():
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
    return folders
