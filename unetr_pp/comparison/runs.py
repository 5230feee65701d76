"""One network's fold in a comparison: the training budget, the resume decision, and training via the train CLI."""
from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, results_folder
from unetr_pp.training.recipes import NNUNET, results_trainer_name
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json

FINAL_CHECKPOINT = "model_final_checkpoint.model"
VALIDATION_SUMMARY = Path("validation_raw") / "summary.json"
RECORD_NAME = "comparison_record.json"
_BUDGET_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_TAIL_BYTES = 4096


@dataclass(frozen=True)
class Budget:
    """Training budget shared by every network; None = the trainer's default."""

    epochs: int | None = None
    iters_per_epoch: int | None = None
    val_iters: int | None = None
    val_disable_tta: bool = False

    def train_args(self) -> list[str]:
        """The train CLI options that set this budget."""
        args = []
        for flag, value in (("--epochs", self.epochs), ("--iters_per_epoch", self.iters_per_epoch),
                            ("--val_iters", self.val_iters)):
            if value is not None:
                args += [flag, str(value)]
        if self.val_disable_tta:
            args.append("--val_disable_tta")
        return args

    def describe(self) -> str:
        """Human-readable budget, e.g. `14 epochs x 25 iterations, 5 validation iterations/epoch, no TTA`."""
        epochs = "default" if self.epochs is None else str(self.epochs)
        iters = "default" if self.iters_per_epoch is None else str(self.iters_per_epoch)
        val = "default" if self.val_iters is None else str(self.val_iters)
        tta = ", validation without TTA" if self.val_disable_tta else ""
        return f"{epochs} epochs x {iters} iterations, {val} validation iterations/epoch{tta}"


def parse_budget(text: str | None, val_iters: int | None = None, disable_tta: bool = False) -> Budget:
    """`14x25` (EPOCHSxITERS; None = trainer defaults) plus validation iterations and TTA -> Budget."""
    epochs = iters = None
    if text is not None:
        match = _BUDGET_RE.match(text)
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            raise UnetrPPError(f"--budget {text!r}: expected EPOCHSxITERS with positive integers, e.g. 14x25")
        epochs, iters = int(match.group(1)), int(match.group(2))
    if val_iters is not None and val_iters < 1:
        raise UnetrPPError(f"--val_iters must be a positive integer, got {val_iters}")
    return Budget(epochs, iters, val_iters, disable_tta)


@dataclass(frozen=True)
class NetworkRun:
    """Where one network's fold lives: `$RESULTS_FOLDER/unetr_pp/<config>/<task>/<trainer>__<plans>/fold_<k>`
    (`<trainer>-seed__<plans>` when `recipe` is a seed's own)."""

    network: str
    task: str
    fold: str
    configuration: str
    plans_identifier: str
    recipe: str = NNUNET.name

    @property
    def seed_recipe(self) -> bool:
        """Trained with `--recipe seed` (the network's own paper recipe rather than the common one)."""
        return self.recipe != NNUNET.name

    @property
    def trainer(self) -> str:
        """Trainer name of the network (`<network>_trainer`)."""
        return f"{self.network}_trainer"

    @property
    def fold_dir(self) -> Path:
        """The fold folder the train CLI writes."""
        folder = f"{results_trainer_name(self.trainer, self.recipe)}__{self.plans_identifier}"
        return results_folder() / self.configuration / self.task / folder / f"fold_{self.fold}"

    @property
    def record_path(self) -> Path:
        """The comparison's record of the budget the fold was trained with."""
        return self.fold_dir / RECORD_NAME


def training_decision(run: NetworkRun, budget: Budget) -> tuple[bool, str]:
    """(train?, why): reuse only a finished fold whose record matches `budget` and the current checkpoint."""
    checkpoint = run.fold_dir / FINAL_CHECKPOINT
    if not checkpoint.is_file():
        return True, f"no {FINAL_CHECKPOINT} in {run.fold_dir}"
    if not (run.fold_dir / VALIDATION_SUMMARY).is_file():
        return True, f"no {VALIDATION_SUMMARY} in {run.fold_dir}"
    if not run.record_path.is_file():
        return True, f"no {RECORD_NAME}: trained outside the comparison, budget unknown"
    try:
        record = load_json(run.record_path)
        recorded = Budget(**record["budget"])
        mtime = int(record["checkpoint_mtime_ns"])
    except (UnetrPPError, KeyError, TypeError, ValueError):
        return True, f"{run.record_path} is unreadable"
    if recorded != budget:
        return True, f"budget changed ({recorded.describe()} -> {budget.describe()})"
    if checkpoint.stat().st_mtime_ns != mtime:
        return True, f"{checkpoint} changed since the comparison trained it"
    return False, f"finished with the same budget ({run.fold_dir})"


def write_record(run: NetworkRun, budget: Budget) -> None:
    """Record the budget and the checkpoint's mtime after a successful training."""
    checkpoint = run.fold_dir / FINAL_CHECKPOINT
    save_json({"network": run.network, "trainer": run.trainer, "recipe": run.recipe, "budget": asdict(budget),
               "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns}, run.record_path)


def train_command(run: NetworkRun, budget: Budget, device: str | None) -> list[str]:
    """The train CLI call for one network (same interpreter as this process)."""
    command = [sys.executable, "-m", "unetr_pp.cli.train", run.configuration, run.trainer, run.task, run.fold,
               *budget.train_args()]
    if run.plans_identifier != DEFAULT_PLANS_IDENTIFIER:
        command += ["-p", run.plans_identifier]
    if run.seed_recipe:
        command += ["--recipe", "seed"]
    if device:
        command += ["--device", device]
    return command


def _last_line(tail: bytes) -> str:
    """The last non-empty line of a process's stderr tail (progress-bar carriage returns split lines too)."""
    lines = [line.strip() for line in re.split(r"[\r\n]", tail.decode("utf-8", "replace")) if line.strip()]
    return lines[-1] if lines else ""


def run_training(run: NetworkRun, budget: Budget, device: str | None) -> str | None:
    """Train one network through the train CLI (its output shown live); None on success, else the reason."""
    command = train_command(run, budget, device)
    print(f"$ {' '.join(command[2:])}", flush=True)
    tail: collections.deque[bytes] = collections.deque()
    size = 0
    env = dict(os.environ)
    if device == "cpu":  # idle OpenMP threads sleep: spinning ones slow CPU training ~10x beside any other load
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with subprocess.Popen(command, stderr=subprocess.PIPE, env=env) as proc:
        while chunk := os.read(proc.stderr.fileno(), 65536):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            tail.append(chunk)
            size += len(chunk)
            while size - len(tail[0]) >= _TAIL_BYTES:
                size -= len(tail.popleft())
        code = proc.wait()
    if code != 0:
        last = _last_line(b"".join(tail))
        return f"training exited with code {code}" + (f": {last}" if last else "")
    for needed in (FINAL_CHECKPOINT, VALIDATION_SUMMARY):
        if not (run.fold_dir / needed).is_file():
            return f"training finished without {run.fold_dir / needed}"
    write_record(run, budget)
    return None
