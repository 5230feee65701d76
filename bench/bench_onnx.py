"""Sliding-window prediction with torch vs onnxruntime running the network (same weights, windows, allocator).

For each network: build it for the patch (as bench_networks.py, 14 classes, random weights, eval mode), export it
with `unetr_pp.inference.deploy.export_network` (ONNX opset 17, dynamic batch), then run our
`sliding_window_logits` on one random volume twice per round: with the torch module and with
`unetr_pp.inference.runtime.OnnxRuntimeNetwork` (what `unetr_pp_predict --backend onnxruntime` uses).
Same process, so the same allocator for both (`keep_freed_memory`, as unetr_pp_predict applies it);
OMP_WAIT_POLICY=PASSIVE as the CLI; onnxruntime as the CLI runs it: no thread spinning (`--ort_spinning` to allow
it), tensors from malloc, not its arena (`--ort_arena`);
the same number of threads for both. Runs are interleaved (torch, onnxruntime, torch, ...) and the medians reported.
Usage: python bench/bench_onnx.py [--networks unetr_pp nnunet] [--shape 64 192 192] [--patch 64 128 128]
       [--step 0.5] [--sw_batch_size 2] [--repeats 2] [--threads 2] [--classes 14] [--tta] [--ort_spinning]
       [--ort_arena]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: idle OpenMP threads do not spin

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from bench_inference import _time_interleaved  # noqa: E402
from bench_networks import _plans_config  # noqa: E402

from unetr_pp.inference.deploy import export_network  # noqa: E402
from unetr_pp.inference.runtime import OnnxRuntimeNetwork  # noqa: E402
from unetr_pp.inference.sliding_window import SlidingWindowSettings, sliding_window_logits, window_starts  # noqa: E402
from unetr_pp.networks import build_network  # noqa: E402
from unetr_pp.utilities.memory import keep_freed_memory  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["unetr_pp", "nnunet"])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 192, 192])
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--step", type=float, default=0.5)
    parser.add_argument("--sw_batch_size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--tta", action="store_true", help="mirror TTA over the 3 axes (8x the forwards)")
    parser.add_argument("--ort_spinning", action="store_true", help="let onnxruntime's idle threads spin")
    parser.add_argument("--ort_arena", action="store_true", help="onnxruntime's own CPU memory arena (not malloc)")
    return parser


def bench_network(name: str, args: argparse.Namespace, image: torch.Tensor, tmp: Path) -> None:
    """Export `name`, time both backends' sliding window on `image`, print one block of results."""
    torch.manual_seed(0)
    net = build_network(name, _plans_config(list(args.patch), args.classes), False).eval()
    start = time.perf_counter()
    export_diff = export_network(net, tmp / f"{name}.onnx", "onnx", [1, *args.patch], name=name)
    export_seconds = time.perf_counter() - start
    runtime = OnnxRuntimeNetwork(tmp / f"{name}.onnx", spinning=args.ort_spinning, arena=args.ort_arena)
    settings = SlidingWindowSettings(tuple(args.patch), args.step, args.sw_batch_size,
                                     mirror_axes=(0, 1, 2) if args.tta else ())
    (t_torch, c_torch, out_torch), (t_ort, c_ort, out_ort) = _time_interleaved(
        [lambda: sliding_window_logits(net, image, settings), lambda: sliding_window_logits(runtime, image, settings)],
        args.repeats)
    n_windows = 1
    for starts in window_starts(args.shape, args.patch, args.step):
        n_windows *= len(starts)
    print(f"{name}: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters, {n_windows} windows, "
          f"export {export_seconds:.0f} s (max |onnx - torch| on a random batch {export_diff:.1e})")
    print(f"  max |onnxruntime - torch| of the blended logits = {(out_ort - out_torch).abs().max().item():.2e}")
    print(f"  wall: torch {t_torch:.2f} s, onnxruntime {t_ort:.2f} s, torch / onnxruntime = {t_torch / t_ort:.2f}x")
    print(f"  CPU:  torch {c_torch:.2f} s, onnxruntime {c_ort:.2f} s, torch / onnxruntime = {c_torch / c_ort:.2f}x")


def main() -> None:
    args = _parser().parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    image = torch.randn(1, *args.shape, generator=torch.Generator().manual_seed(0))
    print(f"volume {args.shape}, patch {args.patch}, step {args.step}, sw_batch_size {args.sw_batch_size}, "
          f"TTA {'on' if args.tta else 'off'}, {args.threads} threads, {args.classes} classes, "
          f"onnxruntime spinning {'on' if args.ort_spinning else 'off'}, arena {'on' if args.ort_arena else 'off'}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            bench_network(name, args, image, Path(tmp))


if __name__ == "__main__":
    main()
