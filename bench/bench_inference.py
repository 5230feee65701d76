"""Our sliding window vs MONAI `sliding_window_inference` (Gaussian blending) on the same network and volume.

Both blend raw logits of the same windows: the volume is chosen so that nnU-Net's window placement and
MONAI's scan interval give identical window starts (image - patch a multiple of patch * step), and
MONAI is run once with our Gaussian map (`roi_weight_map`, like with like) and once with its own
(`mode="gaussian"`, sigma_scale 0.125; it clamps weights below 1e-3, ours keeps the true values).
The network (eval mode, CPU, no TTA): MONAI's DynUNet in an nnU-Net-like small configuration (default), or
one of our registry's networks (`--network unetr_pp|nnunet|unetr|...`, built for the patch as in
bench_networks.py); both tools run the same module with the same weights.
Usage: python bench/bench_inference.py [--network dynunet] [--shape 96 192 192] [--patch 96 96 96]
       [--overlap 0.5] [--sw_batch_size 2] [--repeats 2] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import DynUNet

from bench_networks import _plans_config  # noqa: E402  (bench/ is on sys.path when run as a script)

from unetr_pp.inference.sliding_window import (
    SlidingWindowSettings,
    gaussian_importance_map,
    sliding_window_logits,
    window_starts,
)
from unetr_pp.networks import build_network


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="dynunet", help="dynunet or a network name of our registry")
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 192, 192])
    parser.add_argument("--patch", type=int, nargs=3, default=[96, 96, 96])
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--sw_batch_size", type=int, default=2)
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours_starts = window_starts(args.shape, args.patch, 1 - args.overlap)
    monai_starts = _monai_starts(args.shape, args.patch, args.overlap)
    if ours_starts != monai_starts:
        raise SystemExit(f"window starts differ (ours {ours_starts}, MONAI {monai_starts}); "
                         "choose shape - patch as a multiple of patch * (1 - overlap)")
    if args.network == "dynunet":
        net = DynUNet(3, 1, args.classes, kernel_size=[3, 3, 3, 3, 3], strides=[1, 2, 2, 2, 2],
                      upsample_kernel_size=[2, 2, 2, 2], filters=[16, 32, 64, 128, 192], norm_name="instance").eval()
    else:
        net = build_network(args.network, _plans_config(list(args.patch), args.classes), False).eval()
    image = torch.randn(1, *args.shape)
    settings = SlidingWindowSettings(tuple(args.patch), 1 - args.overlap, args.sw_batch_size, mirror_axes=())
    weights = torch.tensor(gaussian_importance_map(args.patch))

    def ours() -> torch.Tensor:
        return sliding_window_logits(net, image, settings)

    def monai(weight_map: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return sliding_window_inference(image[None], args.patch, args.sw_batch_size, net, overlap=args.overlap,
                                            mode="gaussian", sigma_scale=0.125, roi_weight_map=weight_map)[0]

    (t_ours, c_ours, out_ours), (t_peer, c_peer, out_peer) = _time_interleaved([ours, lambda: monai(weights)],
                                                                               args.repeats)
    out_monai_map = monai(None)
    n_windows = int(np.prod([len(s) for s in ours_starts]))
    print(f"volume {args.shape}, patch {args.patch}, overlap {args.overlap}, {n_windows} windows, "
          f"sw_batch_size {args.sw_batch_size}, {args.threads} threads, {args.network} {args.classes} classes")
    print(f"max |ours - MONAI (same Gaussian map)|   = {(out_ours - out_peer).abs().max().item():.2e}")
    print(f"max |ours - MONAI (its own Gaussian map)| = {(out_ours - out_monai_map).abs().max().item():.2e}")
    print(f"wall: ours {t_ours:.2f} s, MONAI {t_peer:.2f} s, MONAI / ours = {t_peer / t_ours:.2f}x")
    print(f"CPU:  ours {c_ours:.2f} s, MONAI {c_peer:.2f} s, MONAI / ours = {c_peer / c_ours:.2f}x")


if __name__ == "__main__":
    main()
