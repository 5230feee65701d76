"""glibc's default allocator vs `keep_freed_memory` (unetr_pp/utilities/memory.py) for 3D networks on CPU.

Each (network, mode, allocator) runs in a fresh subprocess: eval forward of a batch (no grad), or a
training step (train mode, forward + backward of the mean of the outputs, SGD step). Printed per run: median
seconds per pass after one warm-up, system CPU seconds and minor page faults per pass, peak RSS.
`--mode soak`: `--repeats` training steps, after every 5th a sliding window over a volume that grows each
time (as validation does); prints the total seconds and the resident memory after the 3rd and the last step
(does kept memory keep growing?).
Usage: python bench/bench_malloc.py [--networks dynunet unetr_pp nnunet] [--patch 64 128 128] [--batch 2]
       [--mode forward|train|soak] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: idle OpenMP threads do not spin

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from bench_networks import _plans_config, monai_dynunet  # noqa: E402

from unetr_pp.inference.sliding_window import SlidingWindowSettings, sliding_window_logits  # noqa: E402
from unetr_pp.networks import build_network  # noqa: E402
from unetr_pp.utilities.memory import keep_freed_memory  # noqa: E402


def _network(name: str, patch: list[int], classes: int, train: bool) -> torch.nn.Module:
    if name == "dynunet":
        return monai_dynunet(classes, deep_supervision=train)
    return build_network(name, _plans_config(patch, classes), train)


def measure(args: argparse.Namespace) -> dict:
    """Per-pass median seconds, system seconds and page faults, and peak RSS of one network in this process."""
    if args.allocator == "keep":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = _network(args.networks[0], args.patch, args.classes, args.mode != "forward")
    x = torch.randn(args.batch, 1, *args.patch)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99, nesterov=True)

    def one_pass() -> None:
        if args.mode == "forward":
            with torch.inference_mode():
                net.eval()(x)
            return
        optimizer.zero_grad(set_to_none=True)
        out = net.train()(x)
        outputs = list(out) if isinstance(out, (list, tuple)) else [out]
        if outputs[0].ndim == x.ndim + 1:  # MONAI DynUNet stacks its deep-supervision heads on dim 1
            outputs = list(outputs[0].unbind(1))
        sum(o.float().mean() for o in outputs).backward()
        optimizer.step()

    if args.mode == "soak":
        return _soak(net, one_pass, args)
    one_pass()
    seconds, system, faults = [], [], []
    for _ in range(args.repeats):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        one_pass()
        after = resource.getrusage(resource.RUSAGE_SELF)
        seconds.append(time.perf_counter() - start)
        system.append(after.ru_stime - before.ru_stime)
        faults.append(after.ru_minflt - before.ru_minflt)
    return {"seconds": statistics.median(seconds), "system": statistics.median(system),
            "faults": statistics.median(faults), "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _resident_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _soak(net: torch.nn.Module, step, args: argparse.Namespace) -> dict:
    """`repeats` training steps with a growing sliding-window prediction after every 5th: time and memory."""
    settings = SlidingWindowSettings(tuple(args.patch), 0.5, args.batch, ())
    resident, start = [], time.perf_counter()
    for i in range(args.repeats):
        step()
        if i % 5 == 4:
            volume = torch.randn(1, args.patch[0] + 8 * i, args.patch[1] + 32, args.patch[2] + 22)
            sliding_window_logits(net, volume, settings)
        resident.append(_resident_gb())
    return {"seconds": time.perf_counter() - start, "rss_step3_gb": resident[min(2, len(resident) - 1)],
            "rss_last_gb": resident[-1], "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["dynunet", "unetr_pp", "nnunet"])
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--mode", choices=("forward", "train", "soak"), default="forward")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--allocator", choices=("system", "keep"), help=argparse.SUPPRESS)  # set in a child
    args = parser.parse_args()
    if args.allocator:
        print(json.dumps(measure(args)))
        return
    print(f"{args.mode}, batch {args.batch} x {args.patch}, {args.threads} threads, {args.repeats} passes")
    if args.mode == "soak":
        print(f"{'network':<10}{'allocator':<10}{'total s':>8}{'RSS@3 GB':>10}{'RSS@end':>9}{'peak GB':>9}")
    else:
        print(f"{'network':<10}{'allocator':<10}{'s/pass':>8}{'sys s':>8}{'faults':>10}{'peak GB':>9}")
    for name in args.networks:
        results = {}
        for allocator in ("system", "keep"):
            command = [sys.executable, __file__, "--networks", name, "--patch", *map(str, args.patch), "--batch",
                       str(args.batch), "--classes", str(args.classes), "--mode", args.mode, "--repeats",
                       str(args.repeats), "--threads", str(args.threads), "--allocator", allocator]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[allocator] = r = json.loads(out.strip().splitlines()[-1])
            if args.mode == "soak":
                print(f"{name:<10}{allocator:<10}{r['seconds']:8.1f}{r['rss_step3_gb']:10.2f}{r['rss_last_gb']:9.2f}"
                      f"{r['peak_rss_gb']:9.2f}")
                continue
            print(f"{name:<10}{allocator:<10}{r['seconds']:8.3f}{r['system']:8.2f}{r['faults']:10.0f}"
                  f"{r['peak_rss_gb']:9.2f}")
        print(f"{'':<10}system / keep = {results['system']['seconds'] / results['keep']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
