"""A tiny preprocessed task for the training tests: 5 CT-like cases, patch 16x32x32, batch 2, a slim
nnU-Net (8 base features) so a training iteration costs ~0.3 s on one CPU thread."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from unetr_pp.cli.plan_and_preprocess import main as plan_and_preprocess

from prep_tasks import make_task

TASK = "Task902_TrainTiny"
SHAPES = [(16 + i % 2, 30 + i, 32 - i) for i in range(5)]
SPACINGS = [(1.5, 1.0, 1.0)] * 5


def build_template(base: Path, monkeypatch) -> Path:
    """Raw + preprocessed tiny task under `base` (raw/, preprocessed/); returns `base`."""
    for name in ("raw", "preprocessed"):
        (base / name).mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("unetr_pp_raw_data_base", str(base / "raw"))
    monkeypatch.setenv("unetr_pp_preprocessed", str(base / "preprocessed"))
    make_task(base / "raw", name=TASK, n_cases=5, shapes=SHAPES, spacings=SPACINGS)
    code = plan_and_preprocess(["-t", TASK, "-c", "3d_fullres", "-tf", "1", "-tl", "1",
                                "--override", "patch_size=[16,32,32]", "--override", "batch_size=2",
                                "--override", "network_kwargs.nnunet.base_features=8",
                                "--override", "network_kwargs.nnunet.max_features=64"])
    assert code == 0
    return base


def install(template: Path, env_folders: dict[str, Path]) -> None:
    """Copy the template's raw and preprocessed folders into a test's env folders."""
    for name, var in (("raw", "unetr_pp_raw_data_base"), ("preprocessed", "unetr_pp_preprocessed")):
        shutil.copytree(template / name, env_folders[var], dirs_exist_ok=True)


def fold_folder(env_folders: dict[str, Path], trainer: str = "nnunet_trainer", fold: str = "0") -> Path:
    """The results folder of `trainer` on the tiny task."""
    return (env_folders["RESULTS_FOLDER"] / "unetr_pp" / "3d_fullres" / TASK / f"{trainer}__unetr_pp_Plansv2.1"
            / f"fold_{fold}")


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory) -> Path:
    """The tiny raw + preprocessed task, built once per session."""
    with pytest.MonkeyPatch.context() as mp:
        return build_template(tmp_path_factory.mktemp("tiny_training_task"), mp)


@pytest.fixture
def tiny_task(tiny_template, env_folders) -> dict[str, Path]:
    """env_folders holding a fresh copy of the tiny task; DA in-process, one torch thread."""
    install(tiny_template, env_folders)
    return env_folders


def run_args(fold: str = "0", trainer: str = "nnunet_trainer", epochs: int = 2, iters: int = 2,
             workers: int = 0) -> list[str]:
    """unetr_pp_train arguments for a short seeded run on the tiny task (data augmentation in-process by default)."""
    return ["3d_fullres", trainer, "902", fold, "--epochs", str(epochs), "--iters_per_epoch", str(iters),
            "--val_iters", "1", "-npda", str(workers), "--seed", "0", "--val_disable_tta"]
