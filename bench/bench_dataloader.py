"""Augmented training batches per second with N workers: our `make_loaders` vs nnU-Net v2's loader.

One synthetic CT-like raw task (the writer of bench_preprocessing.py) is preprocessed by both tools
(`nnUNetv2_plan_and_preprocess -c 3d_fullres` and ours `-c 3d_fullres`); each loader then reads its own
tool's preprocessed cases (ours: memory-mapped .npy, nnU-Net: .b2nd) with the same patch size, batch size,
deep-supervision scales (nnU-Net's rule from the topology of that patch) and 33 % foreground oversampling.
Peer: `nnUNetDataLoader` + `nnUNetTrainer.get_training_transforms` (batchgeneratorsv2) in
`NonDetMultiThreadedAugmenter`, set up as `nnUNetTrainer.get_dataloaders` does. Ours: the training loader of
`unetr_pp.training.data.make_loaders` (its validation loader, 1 worker, is started too and left idle).
Each: `--warmup` batches, then `--batches` timed batches -> batches/s; `--rounds` alternating rounds, each with
freshly started workers; ratio of the median rates ours/peer (> 1: ours faster).
Run from /work/venv-bench (it has nnunetv2, batchgeneratorsv2 and blosc2):
    PYTHONPATH=$PWD /work/venv-bench/bin/python bench/bench_dataloader.py [--cases 4] [--shape 64 256 256]
        [--patch 64 128 128] [--batch 2] [--workers 2] [--batches 60] [--warmup 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_preprocessing import TASK, TASK_ID, make_raw_task  # noqa: E402

from unetr_pp.planning.topology import plans_topology  # noqa: E402


def preprocess_both(work: Path, cases: int, shape: tuple[int, int, int], processes: int) -> tuple[Path, Path]:
    """(nnU-Net preprocessed task folder, our preprocessed task folder) for one synthetic raw task."""
    raw = work / "unetr_pp_raw_data"
    make_raw_task(raw, cases, shape)
    nn_pre, our_pre = work / "nnunet_preprocessed", work / "unetr_pp_preprocessed"
    nn_pre.mkdir()
    our_pre.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", nnUNet_raw=str(raw), nnUNet_preprocessed=str(nn_pre),
               nnUNet_results=str(work / "nnunet_results"), unetr_pp_raw_data_base=str(work),
               unetr_pp_preprocessed=str(our_pre), RESULTS_FOLDER=str(work / "results"))
    p = str(processes)
    for cmd in ([str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"), "-d", str(TASK_ID), "-c",
                 "3d_fullres", "-np", p, "-npfp", p],
                [sys.executable, "-m", "unetr_pp.cli.plan_and_preprocess", "-t", TASK, "-c", "3d_fullres", "-tf", p]):
        result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return nn_pre / TASK, our_pre / TASK


def ds_scales(patch: list[int]) -> list[tuple[float, float, float]]:
    """nnU-Net's deep-supervision scales (full resolution first) for the topology of `patch`."""
    pools, _ = plans_topology(patch)
    cumulative = np.cumprod(np.vstack([[1, 1, 1]] + pools), axis=0)
    return [tuple(float(s) for s in 1 / c) for c in cumulative[:-1]]


def time_batches(loader, warmup: int, batches: int) -> float:
    """Batches per second over `batches` calls of next(loader) after `warmup` calls."""
    for _ in range(warmup):
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches / (time.perf_counter() - start)


def nnunet_loader(task: Path, patch: list[int], batch: int, scales, workers: int):
    """nnU-Net v2's training loader for the preprocessed `task`, as nnUNetTrainer.get_dataloaders builds it."""
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
    from nnunetv2.configuration import ANISO_THRESHOLD
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(str(task / "nnUNetPlans.json"))
    labels = plans.get_label_manager(json.loads((task / "dataset.json").read_text()))
    dummy_2d = max(patch) / patch[0] > ANISO_THRESHOLD
    rotation = (-np.pi, np.pi) if dummy_2d else (-30. / 360 * 2. * np.pi, 30. / 360 * 2. * np.pi)
    initial = get_patch_size(patch, rotation, rotation, rotation, (0.85, 1.25))
    if dummy_2d:
        initial[0] = patch[0]
    transforms = nnUNetTrainer.get_training_transforms(
        patch, rotation, scales, (0, 1, 2), dummy_2d,
        use_mask_for_norm=plans.get_configuration("3d_fullres").use_mask_for_norm, is_cascaded=False,
        foreground_labels=labels.foreground_labels, regions=None, ignore_label=labels.ignore_label)
    dataset = nnUNetDatasetBlosc2(str(task / "nnUNetPlans_3d_fullres"))
    loader = nnUNetDataLoader(dataset, batch, initial, patch, labels, oversample_foreground_percent=0.33,
                              transforms=transforms)
    return NonDetMultiThreadedAugmenter(loader, None, workers, num_cached=max(6, workers // 2), seeds=None,
                                        pin_memory=False, wait_time=0.002)


def our_loaders(task: Path, patch: list[int], batch: int, scales, workers: int):
    """Our (training, validation) loaders for the preprocessed `task`."""
    from unetr_pp.training.data import LoaderSettings, make_loaders

    plans = json.loads((task / "unetr_pp_Plansv2.1.json").read_text())
    data = task / plans["configurations"]["3d_fullres"]["data_identifier"]
    ids = sorted(p.name[:-len(".json")] for p in data.glob("*.json"))
    settings = LoaderSettings(patch_size=tuple(patch), batch_size=batch, deep_supervision_scales=scales,
                              num_processes=workers, seed=0)
    return make_loaders(data, ids, ids, plans, "3d_fullres", settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 256, 256], help="z y x of the largest raw case")
    parser.add_argument("--patch", type=int, nargs=3, default=None, help="default: our planned 3d_fullres patch")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per loader (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        nn_task, our_task = preprocess_both(work, args.cases, tuple(args.shape), args.workers)
        planned = json.loads((our_task / "unetr_pp_Plansv2.1.json").read_text())["configurations"]["3d_fullres"]
        patch = list(args.patch or planned["patch_size"])
        scales = ds_scales(patch)
        peer_rates, our_rates = [], []
        for _ in range(args.rounds):  # alternate, so that load changes on the machine hit both
            peer = nnunet_loader(nn_task, patch, args.batch, scales, args.workers)
            try:
                peer_rates.append(time_batches(peer, args.warmup, args.batches))
            finally:
                peer._finish()
            train, val = our_loaders(our_task, patch, args.batch, scales, args.workers)
            try:
                our_rates.append(time_batches(train, args.warmup, args.batches))
            finally:
                train.close()
                val.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.cases} cases (largest {args.shape}), patch {patch}, batch {args.batch}, {args.workers} workers, "
          f"{len(scales)} deep-supervision scales, {args.batches} batches after {args.warmup} warm-up, "
          f"{args.rounds} rounds")
    print(f"{'loader':10s} {'median batches/s':>17s}   rounds")
    for name, rates in (("nnU-Net v2", peer_rates), ("ours", our_rates)):
        print(f"{name:10s} {statistics.median(rates):17.2f}   {' '.join(f'{r:.2f}' for r in rates)}")
    print(f"ratio ours/nnU-Net v2 (medians): {statistics.median(our_rates) / statistics.median(peer_rates):.3f}")


if __name__ == "__main__":
    main()
