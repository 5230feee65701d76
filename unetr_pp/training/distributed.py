"""DDP helpers: process group from torchrun's env (RANK/WORLD_SIZE/LOCAL_RANK), batch split, reductions.

Without those variables everything degrades to a single process (rank 0 of 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from unetr_pp.utilities.errors import UnetrPPError


@dataclass(frozen=True)
class DistInfo:
    """This process' place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group with more than one rank is running."""
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join torchrun's process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU); else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank)


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def rank_batch_size(global_batch: int, info: DistInfo) -> int:
    """This rank's share of the global batch (the first `global_batch % world` ranks get one more)."""
    if global_batch < info.world_size:
        raise UnetrPPError(f"batch size {global_batch} cannot be split across {info.world_size} processes; "
                           "use fewer processes or a larger batch_size in the plans")
    return global_batch // info.world_size + int(info.rank < global_batch % info.world_size)


def rank_oversample_percent(global_batch: int, oversample_foreground_percent: float, info: DistInfo) -> float:
    """This rank's foreground-oversampling share so the global batch is oversampled as on one process.

    nnU-Net v2 `_set_batch_size_and_oversample`: the samples of the global batch are numbered across ranks
    (rank 0 first) and marked forced as one process' loader would (`not i < round(batch * (1 - p))`); a rank
    wholly before the forced tail gets 0, one wholly inside it 1, else the forced fraction of its own samples.
    """
    if not info.enabled:
        return oversample_foreground_percent
    sizes = [rank_batch_size(global_batch, DistInfo(r, info.world_size)) for r in range(info.world_size)]
    low, high = sum(sizes[:info.rank]), sum(sizes[:info.rank + 1])
    keep = 1 - oversample_foreground_percent
    if high / global_batch < keep:
        return 0.0
    if low / global_batch > keep:
        return 1.0
    forced = [not i < round(global_batch * keep) for i in range(global_batch)]
    return sum(forced[low:high]) / sizes[info.rank]


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of `tensor` over all ranks (the tensor itself on a single process)."""
    if info.enabled:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    """Wait for all ranks."""
    if info.enabled:
        dist.barrier()
