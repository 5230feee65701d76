"""Seconds per training iteration per trainer at the demo task's plans on CPU, and nnU-Net v2's network step.

Builds the demo task (`make_demo_task`) and its plans (`plan_and_preprocess -t 990 --preset demo`) in a
temporary folder, then, per trainer, runs the trainer's own `initialize()` (network, optimizer, loss,
augmenting loaders with `--workers` processes) and times `--iters` real train iterations (next batch +
forward + Dice+CE deep-supervision loss + backward + grad clip + SGD step) after 1 warm-up iteration:
"s/it" is the median whole iteration, "step" the median without waiting for the batch.
The peer is dynamic-network-architectures' `PlainConvUNet` with nnU-Net v2's 3d_fullres arguments for the
same plans (topology, features min(32·2^i, 320), instance norm, LeakyReLU, deep supervision), nnU-Net v2's
`DC_and_CE_loss` in its `DeepSupervisionWrapper`, grad clip 12 and SGD(1e-2, 0.99, Nesterov) on one fixed
batch of the same size: the ratio compares our nnunet_trainer's step with it.
repuxnet_trainer is skipped by default (its k21 depthwise convolutions take about a minute per batch-1
forward+backward at 32x64x64 on one CPU thread); name it in --trainers to include it.
Run from /work/venv-bench (it has nnunetv2 and dynamic-network-architectures):
    PYTHONPATH=$PWD /work/venv-bench/bin/python bench/bench_train_step.py [--trainers nnunet_trainer ...]
        [--iters 5] [--threads 1] [--workers 2]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: idle OpenMP threads do not spin

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import median_seconds  # noqa: E402
from torch import nn  # noqa: E402

from unetr_pp.cli import make_demo_task, plan_and_preprocess  # noqa: E402
from unetr_pp.experiment.fold_run import fold_setup  # noqa: E402
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, PREPROCESSED_VAR, RAW_BASE_VAR, RESULTS_VAR  # noqa: E402
from unetr_pp.training.trainer import TrainingOptions  # noqa: E402
from unetr_pp.training.trainers import get_trainer_class  # noqa: E402

TRAINERS = ("nnunet_trainer", "unetr_pp_trainer", "unetr_trainer", "swin_unetr_trainer", "uxnet_trainer",
            "repuxnet_trainer", "deformuxnet_trainer")
SLOW = ("repuxnet_trainer",)  # ~56 s per batch-1 fwd+bwd at 32x64x64 on 1 CPU thread: > 10 min for 6 iterations


def prepare_demo(root: Path) -> None:
    """Demo raw task and its demo-preset plans/preprocessed data under `root` (environment variables set)."""
    os.environ[RAW_BASE_VAR] = str(root / "raw")
    os.environ[PREPROCESSED_VAR] = str(root / "preprocessed")
    os.environ[RESULTS_VAR] = str(root / "results")
    for code in (make_demo_task.main(["-o", str(root / "raw" / "unetr_pp_raw_data")]),
                 plan_and_preprocess.main(["-t", "990", "--preset", "demo", "-c", "3d_fullres", "-tf", "2"])):
        if code != 0:
            raise SystemExit("demo task preparation failed")


def time_trainer(name: str, iters: int, workers: int) -> tuple[float, float, dict]:
    """(median s/it, median s/it without the batch wait, plans configuration) of `iters` real iterations."""
    cls = get_trainer_class(name)
    setup = fold_setup("3d_fullres", "990", "0", cls.name, DEFAULT_PLANS_IDENTIFIER)
    trainer = cls(setup, TrainingOptions(device="cpu", seed=0, num_processes=workers))
    try:
        trainer.initialize()
        trainer.model.train()
        trainer.train_step(next(trainer.train_loader))
        whole, step = [], []
        for _ in range(iters):
            start = time.perf_counter()
            batch = next(trainer.train_loader)
            loaded = time.perf_counter()
            trainer.train_step(batch)
            end = time.perf_counter()
            whole.append(end - start)
            step.append(end - loaded)
        return statistics.median(whole), statistics.median(step), trainer.config
    finally:
        trainer.close()


def time_nnunet_v2_step(config: dict, iters: int) -> float:
    """Median seconds of nnU-Net v2's PlainConvUNet train step (DC+CE deep supervision, clip, SGD) on one batch."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    pools, convs = config["pool_op_kernel_sizes"], config["conv_kernel_sizes"]
    strides = [[1, 1, 1]] + [list(p) for p in pools]
    n_stages, classes = len(strides), int(config["num_classes"])
    net = PlainConvUNet(int(config["num_input_channels"]), n_stages, [min(32 * 2 ** i, 320) for i in range(n_stages)],
                        nn.Conv3d, convs, strides, [2] * n_stages, classes, [2] * (n_stages - 1), conv_bias=True,
                        norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    scales = np.vstack([np.ones(3)] + [1 / np.cumprod(np.vstack(pools), axis=0)[i] for i in range(len(pools) - 1)])
    weights = np.array([1 / 2 ** i for i in range(len(scales))])
    weights[-1] = 0
    loss_fn = DeepSupervisionWrapper(
        DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                       weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss),
        weights / weights.sum())
    optimizer = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    batch, patch = int(config["batch_size"]), [int(p) for p in config["patch_size"]]
    rng = torch.Generator().manual_seed(0)
    data = torch.randn(batch, int(config["num_input_channels"]), *patch, generator=rng)
    targets = [torch.randint(0, classes, (batch, 1, *(int(round(p * s)) for p, s in zip(patch, scale))),
                             generator=rng).float() for scale in scales]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(data), targets)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 12)
        optimizer.step()

    net.train()
    return median_seconds(step, iters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=[t for t in TRAINERS if t not in SLOW],
                        help=f"default: all but {', '.join(SLOW)} (too slow on CPU for this run)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per trainer (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the documented training runs)")
    parser.add_argument("--workers", type=int, default=2, help="data augmentation worker processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as tmp:
        prepare_demo(Path(tmp))
        rows, config = {}, None
        for name in args.trainers:
            rows[name] = time_trainer(name, args.iters, args.workers)
            config = rows[name][2]
            print(f"{name:22s} {rows[name][0]:7.3f} s/it  step {rows[name][1]:7.3f} s", flush=True)
    print(f"\ndemo plans: patch {config['patch_size']}, batch {config['batch_size']}, {args.threads} threads, "
          f"{args.workers} workers, median of {args.iters} after 1 warm-up")
    print(f"{'trainer':22s} {'s/it':>7s} {'step (s)':>9s}")
    for name, (whole, step, _) in rows.items():
        print(f"{name:22s} {whole:7.3f} {step:9.3f}")
    if "nnunet_trainer" in rows:
        peer = time_nnunet_v2_step(rows["nnunet_trainer"][2], args.iters)
        print(f"nnU-Net v2 PlainConvUNet step {peer:.3f} s; ratio nnunet_trainer step / nnU-Net v2 step "
              f"{rows['nnunet_trainer'][1] / peer:.3f}")


if __name__ == "__main__":
    main()
