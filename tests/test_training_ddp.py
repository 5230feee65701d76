"""DDP on CPU: torchrun with 2 gloo ranks (one node, or two "nodes" on one host) trains one fold with the global
batch split; weights stay identical."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

from unetr_pp.training.checkpoints import read_checkpoint

from training_tasks import fold_folder, run_args, tiny_task, tiny_template  # noqa: F401 (fixtures)

# an extra trainer (unetr_pp_extra_trainers) whose every rank writes a hash of its final weights
HASHING_TRAINER = """
import hashlib, os
from pathlib import Path
from unetr_pp.training.trainers.nnunet import NNUNetTrainer


class HashingTrainer(NNUNetTrainer):
    name = "hashing_trainer"

    def run_training(self):
        super().run_training()
        digest = hashlib.sha256()
        for key, value in self.network.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        Path(os.environ["WEIGHTS_HASH_FILE"] + f".rank{self.dist.rank}").write_text(digest.hexdigest())
"""


def _setup(tmp_path):
    (tmp_path / "trainers").mkdir()
    (tmp_path / "trainers" / "hashing.py").write_text(HASHING_TRAINER)
    hash_file = tmp_path / "weights"
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1", WEIGHTS_HASH_FILE=str(hash_file),
               unetr_pp_extra_trainers=str(tmp_path / "trainers"))
    return hash_file, env


def _final_weights_digest(folder) -> str:
    digest = hashlib.sha256()
    for key, value in read_checkpoint(folder / "model_final_checkpoint.model").content["state_dict"].items():
        digest.update(key.encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_two_gloo_ranks_end_with_identical_weights(tiny_task, tmp_path):
    hash_file, env = _setup(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "unetr_pp.cli.train", *run_args(trainer="hashing_trainer", epochs=2, iters=2)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (hash_file.with_name(f"weights.rank{r}").read_text() for r in (0, 1))
    assert rank0 == rank1
    folder = fold_folder(tiny_task, trainer="hashing_trainer")
    assert _final_weights_digest(folder) == rank0
    logs = list(folder.glob("training_log_*.txt"))
    assert len(logs) == 1  # only rank 0 writes
    text = logs[0].read_text()
    assert "processes 2" in text and "batch 2 (1 per process)" in text and "epoch 2/2" in text
    assert (folder / "validation_raw" / "summary.json").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_nodes_on_one_host_end_with_identical_weights(tiny_task, tmp_path):
    """The multi-node command (docs/training.md): two torchrun agents, --nnodes 2, c10d rendezvous on localhost."""
    hash_file, env = _setup(tmp_path)
    endpoint = f"localhost:{_free_port()}"
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
         "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", "--rdzv_id=unetr_pp_two_nodes",
         "-m", "unetr_pp.cli.train", *run_args(trainer="hashing_trainer", epochs=2, iters=2)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    rank0, rank1 = (hash_file.with_name(f"weights.rank{r}").read_text() for r in (0, 1))
    assert rank0 == rank1
    folder = fold_folder(tiny_task, trainer="hashing_trainer")
    assert _final_weights_digest(folder) == rank0
    text = next(folder.glob("training_log_*.txt")).read_text()
    assert "processes 2" in text and "batch 2 (1 per process)" in text
