"""Our integrity check vs nnU-Net v2's `verify_dataset_integrity` on the same synthetic task, same worker count.

Also times writing the demo task. The task is written as a v2 dataset (both tools read v2) into a
temporary folder. Needs nnunetv2 (in /work/venv-bench). Usage:
  python bench/bench_integrity.py [--cases 10] [--processes 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from unetr_pp.dataset.integrity import find_integrity_problems
from unetr_pp.dataset.synthetic import ORGANS, make_demo_task
from unetr_pp.utilities.files import save_json


def _median_seconds(fn, repeats: int) -> float:
    return statistics.median(timeit.repeat(fn, number=1, repeat=repeats))


def main() -> None:
    """Write the task, run both verifiers `--repeats` times, print medians and the ratio ours / peer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("nnUNet_raw", tmp)  # nnunetv2 warns at import when unset
        os.environ.setdefault("nnUNet_preprocessed", tmp)
        os.environ.setdefault("nnUNet_results", tmp)
        from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity as peer

        start = time.perf_counter()
        task = make_demo_task(tmp, task_id=990, num_cases=args.cases, num_test_cases=0)
        generate = time.perf_counter() - start
        save_json({"channel_names": {"0": "CT"}, "labels": {"background": 0, **{o.name: o.label for o in ORGANS}},
                   "numTraining": args.cases, "file_ending": ".nii.gz"}, Path(task) / "dataset.json")
        ours_problems = find_integrity_problems(task, num_processes=args.processes)
        assert ours_problems == [], ours_problems
        peer(str(task), args.processes)  # raises on a problem; also a warm-up
        ours = _median_seconds(lambda: find_integrity_problems(task, num_processes=args.processes), args.repeats)
        theirs = _median_seconds(lambda: peer(str(task), args.processes), args.repeats)
    print(f"generate demo task ({args.cases} cases): {generate:.2f} s")
    print(f"verify, {args.processes} processes, median of {args.repeats}: ours {ours:.2f} s, "
          f"nnU-Net v2 {theirs:.2f} s, ratio ours/peer {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
