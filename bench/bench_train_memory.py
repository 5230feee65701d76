"""Peak memory of a whole training process tree (trainer + augmentation workers + forkserver) on CPU.

Runs `python -m unetr_pp.cli.train` as a child and samples /proc every `--interval` seconds: the trainer's
RSS, and over every descendant process the summed RSS (shared pages counted once per process) and the
summed Pss from smaps_rollup (shared pages split between their processes). Reports the peaks and the
tree/main ratios (goal of issue 14: tree peak <= 1.15x the trainer's peak).

    python bench/bench_train_memory.py -t 990 --trainer nnunet_trainer --patch 32 64 64 --batch 2 \\
        --epochs 2 --iters 4 --val_iters 2

`--patch/--batch` train with a copy of the plans (identifier `<plans>_bench`) whose 3d_fullres patch and
batch are changed, on the same preprocessed data, to keep the run within the machine's memory.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from unetr_pp.io.plans import Plans
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, preprocessed_folder, resolve_task


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _rollup_kib(pid: int) -> dict[str, int]:
    """Rss and Pss (KiB) of one process from /proc/<pid>/smaps_rollup ({} once it has ended)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            lines = rollup.read().splitlines()
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) for line in lines[1:] if line.split()[-1] == "kB"}


def sample_tree(root: int) -> tuple[int, int, int, int]:
    """(trainer RSS, tree RSS sum, tree Pss sum, process count) in KiB over `root` and its descendants."""
    main_rss = rss = pss = count = 0
    for pid in _descendants(root):
        values = _rollup_kib(pid)
        if not values:
            continue
        count += 1
        rss += values.get("Rss", 0)
        pss += values.get("Pss", 0)
        if pid == root:
            main_rss = values.get("Rss", 0)
    return main_rss, rss, pss, count


def bench_plans(task: str, patch: list[int] | None, batch: int | None) -> str:
    """The plans identifier to train with: the default one, or a `_bench` copy with patch/batch replaced."""
    if patch is None and batch is None:
        return DEFAULT_PLANS_IDENTIFIER
    folder = preprocessed_folder() / task
    plans = Plans.load(folder / f"{DEFAULT_PLANS_IDENTIFIER}.json")
    config = plans.configuration("3d_fullres").to_json()
    if patch is not None:
        config["patch_size"] = list(patch)
    if batch is not None:
        config["batch_size"] = batch
    data = plans.to_json()
    data["configurations"]["3d_fullres"] = config
    identifier = f"{DEFAULT_PLANS_IDENTIFIER}_bench"
    Plans.from_json(data).save(folder / f"{identifier}.json")
    return identifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-t", "--task", default="990")
    parser.add_argument("--trainer", default="nnunet_trainer")
    parser.add_argument("--patch", type=int, nargs=3)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--val_iters", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2, help="augmentation workers (-npda)")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--label", default="")
    parser.add_argument("--max_gib", type=float, default=6.0,
                        help="stop the run (and report the peaks so far) once the trainer's RSS exceeds this")
    parser.add_argument("--val_disable_tta", action="store_true", help="passed to unetr_pp_train")
    args = parser.parse_args()
    task = resolve_task(args.task)
    identifier = bench_plans(task, args.patch, args.batch)
    cmd = [sys.executable, "-m", "unetr_pp.cli.train", "3d_fullres", args.trainer, task, "0", "-p", identifier,
           "--epochs", str(args.epochs), "--iters_per_epoch", str(args.iters), "--val_iters", str(args.val_iters),
           "-npda", str(args.processes), "--seed", "0"] + (["--val_disable_tta"] if args.val_disable_tta else [])
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks, stopped = [0, 0, 0, 0], False
    while proc.poll() is None:
        for i, value in enumerate(sample_tree(proc.pid)):
            peaks[i] = max(peaks[i], value)
        if peaks[0] > args.max_gib * 2 ** 20 and not stopped:
            proc.terminate()
            stopped = True
        time.sleep(args.interval)
    err = proc.stderr.read()
    if proc.returncode != 0 and not stopped:
        sys.exit(f"training failed ({proc.returncode}):\n{err[-3000:]}")
    main_rss, tree_rss, tree_pss, processes = (v / 2 ** 20 for v in peaks)
    print(json.dumps({"label": args.label, "stopped_above_max_gib": stopped, "command": " ".join(cmd[1:]), "seconds": round(time.perf_counter() - start),
                      "main_peak_rss_gib": round(main_rss, 2), "tree_peak_rss_gib": round(tree_rss, 2),
                      "tree_peak_pss_gib": round(tree_pss, 2), "max_processes": peaks[3],
                      "tree_rss_over_main": round(tree_rss / main_rss, 2),
                      "tree_pss_over_main": round(tree_pss / main_rss, 2)}, indent=1))


if __name__ == "__main__":
    main()
