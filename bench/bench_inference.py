"""Our sliding window vs MONAI `sliding_window_inference` (Gaussian blending) on the same network and volume.

Both blend raw logits of the same windows: the volume is chosen so that nnU-Net's window placement and
MONAI's scan interval give identical window starts (image - patch a multiple of patch * step), and
MONAI is run once with our Gaussian map (`roi_weight_map`, like with like) and once with its own
(`mode="gaussian"`, sigma_scale 0.125; it clamps weights below 1e-3, ours keeps the true values).
The network (eval mode, CPU, no TTA): MONAI's DynUNet in an nnU-Net-like small configuration (default), or
one of our registry's networks (`--network unetr_pp|nnunet|unetr|...`, built for the patch as in
bench_networks.py); both tools run the same module with the same weights.
`--malloc` sets glibc's allocator (unetr_pp/utilities/memory.py): `system` (default settings for both,
same process), `keep` (`keep_freed_memory` for both, same process: like with like), or `shipped` (each
tool in its own processes, alternated per round: ours with `keep_freed_memory` as `unetr_pp_predict`
applies it, MONAI with the system allocator as a MONAI script runs).
Usage: python bench/bench_inference.py [--network dynunet] [--shape 96 192 192] [--patch 96 96 96]
       [--overlap 0.5] [--sw_batch_size 2] [--repeats 2] [--threads 2] [--malloc system|keep|shipped]
       [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from bench_networks import _plans_config, monai_dynunet  # noqa: E402  (bench/ is on sys.path when run as a script)

from unetr_pp.inference.sliding_window import (
    SlidingWindowSettings,
    gaussian_importance_map,
    sliding_window_logits,
    window_starts,
)
from unetr_pp.networks import build_network
from unetr_pp.utilities.memory import keep_freed_memory


def _time_interleaved(fns: list, repeats: int) -> list[tuple[float, float, torch.Tensor]]:
    """Median wall and process-CPU seconds and the last output of each function, runs interleaved.

    Interleaving spreads the load of other jobs over all functions; CPU time is less affected by it.
    """
    outs = [fn() for fn in fns]  # warm-up
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            outs[i] = fn()
            wall[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    return [(statistics.median(w), statistics.median(c), o) for w, c, o in zip(wall, cpu, outs)]


def _monai_starts(shape, patch, overlap) -> list[list[int]]:
    """MONAI's window starts per axis (scan interval int(patch * (1 - overlap)), last window flush)."""
    starts = []
    for size, p in zip(shape, patch):
        interval = max(int(p * (1 - overlap)), 1)
        n = 1 if size <= p else int(np.ceil((size - p) / interval)) + 1
        starts.append(sorted({min(i * interval, size - p) for i in range(n)}))
    return starts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="dynunet", help="dynunet or a network name of our registry")
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 192, 192])
    parser.add_argument("--patch", type=int, nargs=3, default=[96, 96, 96])
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--sw_batch_size", type=int, default=2)
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--malloc", choices=("system", "keep", "shipped"), default="system")
    parser.add_argument("--rounds", type=int, default=2, help="--malloc shipped: process pairs (ours, MONAI)")
    parser.add_argument("--only", choices=("ours", "monai"), help=argparse.SUPPRESS)  # one tool (a child)
    parser.add_argument("--save", help=argparse.SUPPRESS)  # where a child saves its output tensor
    return parser


class Setup:
    """The network, input volume, settings and both tools' callables for the parsed arguments."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        self.args = args
        self.ours_starts = window_starts(args.shape, args.patch, 1 - args.overlap)
        if self.ours_starts != _monai_starts(args.shape, args.patch, args.overlap):
            raise SystemExit(f"window starts differ (ours {self.ours_starts}, MONAI "
                             f"{_monai_starts(args.shape, args.patch, args.overlap)}); "
                             "choose shape - patch as a multiple of patch * (1 - overlap)")
        if args.network == "dynunet":
            self.net = monai_dynunet(args.classes).eval()
        else:
            self.net = build_network(args.network, _plans_config(list(args.patch), args.classes), False).eval()
        self.image = torch.randn(1, *args.shape)
        self.settings = SlidingWindowSettings(tuple(args.patch), 1 - args.overlap, args.sw_batch_size, mirror_axes=())
        self.weights = torch.tensor(gaussian_importance_map(args.patch))

    def ours(self) -> torch.Tensor:
        return sliding_window_logits(self.net, self.image, self.settings)

    def monai(self, own_map: bool = False) -> torch.Tensor:
        """MONAI's sliding window with our Gaussian map (like with like) or with its own (`own_map`)."""
        a = self.args
        with torch.no_grad():
            return sliding_window_inference(self.image[None], a.patch, a.sw_batch_size, self.net, overlap=a.overlap,
                                            mode="gaussian", sigma_scale=0.125,
                                            roi_weight_map=None if own_map else self.weights)[0]


def _child(args: argparse.Namespace) -> None:
    """Time one tool in this process (--malloc shipped); print {wall, cpu} as JSON, save the output."""
    if args.only == "ours":
        keep_freed_memory()
    setup = Setup(args)
    ((wall, cpu, out),) = _time_interleaved([setup.ours if args.only == "ours" else setup.monai], args.repeats)
    torch.save(out, args.save)
    print(json.dumps({"wall": wall, "cpu": cpu}))


def _shipped(args: argparse.Namespace, argv: list[str]) -> tuple[tuple[float, float, torch.Tensor], ...]:
    """Median wall/CPU of each tool over `rounds` alternating child processes, and their outputs."""
    times: dict[str, list[dict]] = {"ours": [], "monai": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for tool in times:
                out = subprocess.run([sys.executable, __file__, *argv, "--only", tool, "--save", f"{tmp}/{tool}.pt"],
                                     capture_output=True, text=True, check=True).stdout
                times[tool].append(json.loads(out.strip().splitlines()[-1]))
        outputs = {tool: torch.load(Path(tmp) / f"{tool}.pt") for tool in times}
    return tuple((statistics.median(r["wall"] for r in runs), statistics.median(r["cpu"] for r in runs),
                  outputs[tool]) for tool, runs in times.items())


def main() -> None:
    argv = sys.argv[1:]
    args = _parser().parse_args(argv)
    if args.only:
        return _child(args)
    if args.malloc == "keep":
        keep_freed_memory()
    setup = Setup(args)
    if args.malloc == "shipped":
        (t_ours, c_ours, out_ours), (t_peer, c_peer, out_peer) = _shipped(args, argv)
    else:
        (t_ours, c_ours, out_ours), (t_peer, c_peer, out_peer) = _time_interleaved([setup.ours, setup.monai],
                                                                                   args.repeats)
    out_monai_map = setup.monai(own_map=True)
    n_windows = int(np.prod([len(s) for s in setup.ours_starts]))
    print(f"volume {args.shape}, patch {args.patch}, overlap {args.overlap}, {n_windows} windows, "
          f"sw_batch_size {args.sw_batch_size}, {args.threads} threads, {args.network} {args.classes} classes, "
          f"malloc {args.malloc}")
    print(f"max |ours - MONAI (same Gaussian map)|   = {(out_ours - out_peer).abs().max().item():.2e}")
    print(f"max |ours - MONAI (its own Gaussian map)| = {(out_ours - out_monai_map).abs().max().item():.2e}")
    print(f"wall: ours {t_ours:.2f} s, MONAI {t_peer:.2f} s, MONAI / ours = {t_peer / t_ours:.2f}x")
    print(f"CPU:  ours {c_ours:.2f} s, MONAI {c_peer:.2f} s, MONAI / ours = {c_peer / c_ours:.2f}x")


if __name__ == "__main__":
    main()
