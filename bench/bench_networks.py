"""Every registered network on CPU: forward+backward time and peak RSS; ours vs MONAI UNETR/SwinUNETR (same weights).

Each network is timed in a fresh subprocess (train mode, deep supervision on, loss = sum of the outputs'
means, batch 1, 1 input channel) so that its peak RSS (ru_maxrss) is its own; the peak RSS delta is
measured from just before the network is built. Then `unetr` and `swin_unetr` are compared with MONAI's
`UNETR` / `SwinUNETR` built with the same kwargs and our state_dict loaded: eval forward, max |Δ| of the
outputs and time ratio ours/MONAI (expected ≈ 1, they are wrappers).
Usage: python bench/bench_networks.py [--patch 32 64 64] [--networks unetr_pp nnunet ...] [--repeats 3]
       [--threads 2] [--classes 9]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: idle OpenMP threads do not spin

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
from timing import median_seconds  # noqa: E402

from unetr_pp.networks import NETWORK_NAMES, build_network  # noqa: E402
from unetr_pp.planning.topology import plans_topology  # noqa: E402

NETWORK_KWARGS = {"unetr_pp": {"variant": "synapse", "stem_stride": [2, 4, 4]}}


def _plans_config(patch: list[int], classes: int) -> dict:
    """The demo preset's plans configuration for `patch` (nnU-Net topology from plans_topology)."""
    pools, convs = plans_topology(patch)
    return {"patch_size": patch, "num_input_channels": 1, "num_classes": classes,
            "pool_op_kernel_sizes": pools, "conv_kernel_sizes": convs, "network_kwargs": NETWORK_KWARGS}


def monai_dynunet(classes: int, deep_supervision: bool = False) -> torch.nn.Module:
    """MONAI's DynUNet in a small nnU-Net-like configuration (filters 16..192, instance norm), 1 input channel."""
    from monai.networks.nets import DynUNet
    return DynUNet(3, 1, classes, kernel_size=[3] * 5, strides=[1, 2, 2, 2, 2], upsample_kernel_size=[2] * 4,
                   filters=[16, 32, 64, 128, 192], norm_name="instance", deep_supervision=deep_supervision,
                   deep_supr_num=2)


def _max_rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_one(name: str, patch: list[int], classes: int, repeats: int) -> dict:
    """Train-mode forward+backward of `name` on (1, 1, *patch): median seconds, params, peak RSS delta."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, *patch)
    rss_before = _max_rss_mb()
    net = build_network(name, _plans_config(patch, classes), True)
    net.train()

    def step() -> None:
        net.zero_grad(set_to_none=True)
        out = net(x)
        outputs = out if isinstance(out, list) else [out]
        sum(o.float().mean() for o in outputs).backward()

    seconds = median_seconds(step, repeats)
    return {"network": name, "params": sum(p.numel() for p in net.parameters()), "seconds": seconds,
            "peak_rss_delta_mb": _max_rss_mb() - rss_before}


def _monai_twin(name: str, ours: torch.nn.Module, patch: list[int], classes: int) -> torch.nn.Module:
    """MONAI's UNETR / SwinUNETR with the kwargs our build uses, holding our weights."""
    from monai.networks.nets import UNETR, SwinUNETR
    if name == "unetr":
        peer = UNETR(1, classes, tuple(patch), feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12,
                     proj_type="perceptron", norm_name="instance", res_block=True)
    else:
        peer = SwinUNETR(1, classes, feature_size=48)
    peer.load_state_dict(ours.state_dict())
    return peer


def compare_monai(name: str, patch: list[int], classes: int, repeats: int) -> dict:
    """Eval forward of ours and MONAI's twin on the same input: max |Δ| and median seconds of each."""
    torch.manual_seed(0)
    ours = build_network(name, _plans_config(patch, classes), True).eval()
    peer = _monai_twin(name, ours, patch, classes).eval()
    x = torch.randn(1, 1, *patch)
    with torch.no_grad():
        diff = float((ours(x) - peer(x)).abs().max())
        t_ours = median_seconds(lambda: ours(x), repeats)
        t_peer = median_seconds(lambda: peer(x), repeats)
    return {"network": name, "max_abs_diff": diff, "ours": t_ours, "monai": t_peer}


def _child(args: argparse.Namespace) -> None:
    """Subprocess entry: measure one network and print its JSON row."""
    torch.set_num_threads(args.threads)
    print(json.dumps(measure_one(args.child, args.patch, args.classes, args.repeats)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, nargs=3, default=[32, 64, 64])
    parser.add_argument("--networks", nargs="+", choices=NETWORK_NAMES, default=list(NETWORK_NAMES))
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=NETWORK_NAMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    torch.set_num_threads(args.threads)
    print(f"patch {args.patch}, batch 1, {args.classes} classes, {args.threads} threads, median of {args.repeats} "
          f"after 1 warm-up; train mode, deep supervision on")
    print(f"{'network':12s} {'params (M)':>10s} {'fwd+bwd (s)':>12s} {'peak RSS Δ (MB)':>16s}")
    for name in args.networks:
        cmd = [sys.executable, __file__, "--child", name, "--patch", *map(str, args.patch), "--classes",
               str(args.classes), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{name:12s} failed: {result.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{name:12s} {row['params'] / 1e6:10.2f} {row['seconds']:12.3f} {row['peak_rss_delta_mb']:16.0f}")
    compared = [n for n in ("unetr", "swin_unetr") if n in args.networks]
    if compared:
        print(f"\nours vs MONAI, same weights, eval forward\n{'network':12s} {'max |Δ|':>10s} {'ours (s)':>9s} "
              f"{'MONAI (s)':>10s} {'ours/MONAI':>11s}")
    for name in compared:
        row = compare_monai(name, args.patch, args.classes, args.repeats)
        print(f"{name:12s} {row['max_abs_diff']:10.2e} {row['ours']:9.3f} {row['monai']:10.3f} "
              f"{row['ours'] / row['monai']:11.3f}")


if __name__ == "__main__":
    main()
