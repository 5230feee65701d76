"""Our UNETR++ vs MONAI UNETR (the baseline of the UNETR++ paper) at the same patch: params, inference and train-step time.

There is no installable package of the official UNETR++ code, so the peer is MONAI's UNETR; the ratio
shows whether our UNETR++ keeps the efficiency the paper reports (fewer parameters and operations than
UNETR). Usage: python bench/bench_unetr_pp.py [--patch 64 128 128] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse

import torch
from monai.networks.nets import UNETR
from timing import median_seconds
from torch import nn

from unetr_pp.networks.unetr_pp import build


def _measure(net: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(median eval forward seconds, median train forward+backward seconds)."""
    def infer() -> None:
        net.eval()
        with torch.no_grad():
            net(x)

    def train_step() -> None:
        net.train()
        net.zero_grad(set_to_none=True)
        out = net(x)
        (sum(o.float().mean() for o in out) if isinstance(out, list) else out.mean()).backward()

    return median_seconds(infer, repeats), median_seconds(train_step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plans_config = {"patch_size": args.patch, "num_input_channels": 1, "num_classes": args.classes}
    ours = build(plans_config, True, variant="synapse", stem_stride=[2, 4, 4])
    peer = UNETR(in_channels=1, out_channels=args.classes, img_size=tuple(args.patch), feature_size=16,
                 hidden_size=768, mlp_dim=3072, num_heads=12, norm_name="instance", res_block=True)
    x = torch.randn(1, 1, *args.patch)
    rows = {}
    for name, net in (("unetr_pp (ours)", ours), ("monai UNETR (peer)", peer)):
        params = sum(p.numel() for p in net.parameters())
        rows[name] = (params, *_measure(net, x, args.repeats))
        print(f"{name:20s} params {params / 1e6:7.2f} M  infer {rows[name][1]:6.2f} s  train step {rows[name][2]:6.2f} s")
    (p_ours, i_ours, t_ours), (p_peer, i_peer, t_peer) = rows.values()
    print(f"ratio ours/peer: params {p_ours / p_peer:.3f}  infer {i_ours / i_peer:.3f}  train step {t_ours / t_peer:.3f}"
          f"  (patch {args.patch}, {args.threads} threads, median of {args.repeats})")


if __name__ == "__main__":
    main()
