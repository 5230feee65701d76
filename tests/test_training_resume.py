"""Crash safety: SIGKILL while a checkpoint is written and during an epoch, then `-c` finishes the run."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from unetr_pp.cli.train import main
from unetr_pp.training.checkpoints import KILL_VAR, read_checkpoint
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

from training_tasks import fold_folder, run_args, tiny_task, tiny_template  # noqa: F401 (fixtures)

EPOCHS = 5


def _latest_epoch(folder) -> int:
    try:
        return int(load_json(folder / "model_latest.model.json")["epoch"])
    except UnetrPPError:
        return 0


def test_sigkill_in_checkpoint_write_and_in_epoch_then_continue(tiny_task):
    folder = fold_folder(tiny_task)
    args = [sys.executable, "-m", "unetr_pp.cli.train", *run_args(epochs=EPOCHS, iters=3)]
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1", **{KILL_VAR: "model_latest:2"})
    # 1) killed after the temporary file of epoch 2's model_latest is complete, before its rename
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert read_checkpoint(folder / "model_latest.model").content["epoch"] == 1
    assert len(list(folder.glob(".model_latest.model.*.tmp"))) == 1
    # 2) continued, then killed during the epoch after epoch 3's checkpoint
    del env[KILL_VAR]
    proc = subprocess.Popen(args + ["-c"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while _latest_epoch(folder) < 3 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    reached = read_checkpoint(folder / "model_latest.model").content["epoch"]
    assert 3 <= reached < EPOCHS
    assert not (folder / "model_final_checkpoint.model").exists()
    # 3) continued to the end: right epoch count, one history entry per epoch, every checkpoint loads
    assert main(run_args(epochs=EPOCHS, iters=3) + ["-c"]) == 0
    final = read_checkpoint(folder / "model_final_checkpoint.model")
    assert final.content["epoch"] == EPOCHS
    assert all(len(v) == EPOCHS for v in final.content["plot_stuff"].values())
    for path in folder.glob("*.model"):
        read_checkpoint(path)
    assert not list(folder.glob(".*.tmp"))
    logs = "".join(p.read_text() for p in folder.glob("training_log_*.txt"))
    # run 2 continued from epoch 1's model_latest, or from epoch 2's model_best when that epoch set a new best
    assert re.search(r"continuing from model_(latest\.model at epoch 1|best\.model at epoch 2)\n", logs)
    assert f"continuing from model_latest.model at epoch {reached}" in logs


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_sigterm_stops_the_data_loader_workers(tiny_task):
    folder = fold_folder(tiny_task)
    args = [sys.executable, "-m", "unetr_pp.cli.train", *run_args(epochs=50, iters=2, workers=2)]
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while _latest_epoch(folder) < 1 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 30
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if Path(f"/proc/{w}").exists()]
    for pid in left:  # do not leave orphans behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left
