"""Foreground oversampling under DDP with 2 real gloo processes: global batch 2, oversample 0.33 -> each rank's
loader forces foreground in exactly the samples nnU-Net v2 (`_set_batch_size_and_oversample` + its data loader's
`get_do_oversample`) forces."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from unetr_pp.training import distributed
from unetr_pp.training.data import LoaderSettings, make_loaders, sampling

from test_training_loader import CONFIG, PATCH, write_case

GLOBAL_BATCH, WORLD, OVERSAMPLE, BATCHES = 2, 2, 0.33, 4


def nnunet_v2_rank_batch_and_share(global_batch: int, world: int, rank: int, percent: float) -> tuple[int, float]:
    """nnU-Net v2 nnUNetTrainer._set_batch_size_and_oversample (MIC-DKFZ/nnUNet @017de4a), re-created."""
    sizes = [global_batch // world] * world
    sizes = [s + 1 if s * world + i < global_batch else s for i, s in enumerate(sizes)]
    low, high = sum(sizes[:rank]), sum(sizes[:rank + 1])
    forced = [not i < round(global_batch * (1 - percent)) for i in range(global_batch)]
    if high / global_batch < 1 - percent:
        share = 0.0
    elif low / global_batch > 1 - percent:
        share = 1.0
    else:
        share = sum(forced[low:high]) / sizes[rank]
    return sizes[rank], share


def nnunet_v2_forced(batch_size: int, share: float) -> list[bool]:
    """nnU-Net v2 nnUNetDataLoader.get_do_oversample for each sample of a rank's batch."""
    return [not j < round(batch_size * (1 - share)) for j in range(batch_size)]


def _rank(rank: int, port: int, folder: str, out: str) -> None:
    """One DDP process: join the gloo group as the trainer does, draw batches, record which samples were forced."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = distributed.setup(torch.device("cpu"))
    forced: list[bool] = []
    choose_bbox = sampling.choose_bbox

    def recording_choose_bbox(shape, patch, final_patch, class_locations):
        forced.append(class_locations is not None)
        return choose_bbox(shape, patch, final_patch, class_locations)

    sampling.choose_bbox = recording_choose_bbox
    batch_size = distributed.rank_batch_size(GLOBAL_BATCH, info)
    share = distributed.rank_oversample_percent(GLOBAL_BATCH, OVERSAMPLE, info)
    settings = LoaderSettings(PATCH, batch_size, oversample_foreground_percent=share, num_processes=0, seed=3,
                              rank=info.rank)
    train, val = make_loaders(folder, ["corner"], ["corner"], CONFIG, settings)
    forced.clear()
    train_forced = [next(train) and forced[-batch_size:] for _ in range(BATCHES)]
    forced.clear()
    foreground = []
    for _ in range(BATCHES):
        batch = next(val)
        foreground.append([bool((batch["target"][0][b] == 1).any()) for b in range(batch_size)])
    report = {"rank": info.rank, "world": info.world_size, "batch_size": batch_size, "share": share,
              "train_forced": train_forced, "val_forced": [forced[i:i + batch_size] for i in
                                                           range(0, len(forced), batch_size)],
              "val_foreground": foreground}
    gathered: list[dict | None] = [None] * WORLD
    dist.all_gather_object(gathered, report)
    train.close()
    val.close()
    if info.is_main:
        with open(out, "w") as f:
            json.dump(gathered, f)
    distributed.cleanup(info)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_force_foreground_where_nnunet_v2_does(tmp_path):
    shape = (40, 80, 80)
    seg = np.zeros((1,) + shape, dtype=np.int8)
    seg[0, :3, :3, :3] = 1  # a tiny organ in a corner: a random 16x32x32 patch hits it with p ~ 0.0004
    write_case(tmp_path / "data", "corner", np.random.default_rng(0).normal(size=(1,) + shape), seg)
    out = tmp_path / "ranks.json"
    mp.spawn(_rank, args=(_free_port(), str(tmp_path / "data"), str(out)), nprocs=WORLD, join=True)
    reports = json.loads(out.read_text())
    assert [r["rank"] for r in reports] == [0, 1] and {r["world"] for r in reports} == {2}
    expected = [nnunet_v2_rank_batch_and_share(GLOBAL_BATCH, WORLD, r, OVERSAMPLE) for r in range(WORLD)]
    assert expected == [(1, 0.0), (1, 1.0)]  # one process would force global sample 1: rank 1 holds it
    for report, (batch_size, share) in zip(reports, expected):
        assert (report["batch_size"], report["share"]) == (batch_size, share)
        forced = nnunet_v2_forced(batch_size, share)
        assert report["train_forced"] == [forced] * BATCHES
        assert report["val_forced"] == [forced] * BATCHES
        assert report["val_foreground"] == [forced] * BATCHES  # forced samples hold the organ, the others miss it
