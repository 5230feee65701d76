"""Patch sampling from memory-mapped preprocessed cases (nnU-Net v1 `DataLoader3D`, foreground oversampling)."""
from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from batchgenerators.dataloading.data_loader import SlimDataLoaderBase

from unetr_pp.preprocessing.preprocessed_data import load_case


def do_oversample(sample_index: int, batch_size: int, oversample_foreground_percent: float) -> bool:
    """nnU-Net v1 `get_do_oversample`: the last samples of a batch are forced to contain foreground."""
    return not sample_index < round(batch_size * (1 - oversample_foreground_percent))


def choose_bbox(shape: Sequence[int], patch_size: Sequence[int], final_patch_size: Sequence[int],
                class_locations: dict[int, np.ndarray] | None) -> list[int]:
    """Lower corner of the patch (may be negative / overhang: the overhang is padded).

    `class_locations` None -> uniform random position; else centred on a random voxel of a random
    non-empty foreground class (uniform random when the case has none). Uses the global numpy RNG.
    """
    need_to_pad = np.array(patch_size) - np.array(final_patch_size)
    for d in range(3):
        if need_to_pad[d] + shape[d] < patch_size[d]:
            need_to_pad[d] = patch_size[d] - shape[d]
    lbs = [-(need_to_pad[d] // 2) for d in range(3)]
    ubs = [shape[d] + need_to_pad[d] // 2 + need_to_pad[d] % 2 - patch_size[d] for d in range(3)]
    voxel = None
    if class_locations is not None:
        classes = [c for c, loc in class_locations.items() if c > 0 and len(loc) > 0]
        if classes:
            locations = class_locations[classes[np.random.choice(len(classes))]]
            voxel = locations[np.random.choice(len(locations))]
    if voxel is None:
        return [int(np.random.randint(lbs[d], ubs[d] + 1)) for d in range(3)]
    return [int(max(lbs[d], voxel[d] - patch_size[d] // 2)) for d in range(3)]


def cut_patch(array: np.ndarray, lb: Sequence[int], patch_size: Sequence[int], pad_value: float,
              out: np.ndarray) -> None:
    """Copy array[:, lb:lb+patch] (C, z, y, x) into `out` (C, *patch), filling outside the array with pad_value."""
    out.fill(pad_value)
    src, dst = [slice(None)], [slice(None)]
    for d in range(3):
        lo, hi = max(0, lb[d]), min(array.shape[d + 1], lb[d] + patch_size[d])
        src.append(slice(lo, hi))
        dst.append(slice(lo - lb[d], hi - lb[d]))
    out[tuple(dst)] = array[tuple(src)]


ORPHAN_CHECK_SECONDS = 1.0


def _exit_when_orphaned() -> None:
    """Worker-side watchdog: end this process once the process that started it is gone (e.g. SIGKILLed).

    batchgenerators' workers otherwise wait forever on their full queue for a reader that no longer exists.
    The starting process is `multiprocessing.parent_process()` (the trainer, also when a forkserver forked
    the worker): its sentinel becomes ready when it ends.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    while parent.is_alive():
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)


class PatchDataLoader(SlimDataLoaderBase):
    """Infinite batches {"data" (B, C, *patch) float32, "seg" (B, 1, *patch) float32 (-1 = pad/outside), "keys"}."""

    def __init__(self, data_folder: Path, case_ids: Sequence[str], patch_size: Sequence[int],
                 final_patch_size: Sequence[int], batch_size: int, num_channels: int,
                 oversample_foreground_percent: float) -> None:
        super().__init__(list(case_ids), batch_size, None)
        self.data_folder = Path(data_folder)
        self.patch_size = tuple(int(v) for v in patch_size)
        self.final_patch_size = tuple(int(v) for v in final_patch_size)
        self.num_channels = num_channels
        self.oversample = oversample_foreground_percent
        self.owner_pid = os.getpid()

    def set_thread_id(self, thread_id: int) -> None:
        """Called in each worker right after `np.random.seed(worker seed)`: seed Python's `random` from it too.

        In a worker process, also limit torch to one thread (the workers already share the cores) and start
        the watchdog that ends the worker when the owning process dies.
        """
        super().set_thread_id(thread_id)
        random.seed(int(np.random.randint(0, 2 ** 31 - 1)))
        if os.getpid() != self.owner_pid:
            torch.set_num_threads(1)
            threading.Thread(target=_exit_when_orphaned, daemon=True).start()

    def generate_train_batch(self) -> dict:
        """One batch; the last `round(B * p)`-style samples are centred on foreground."""
        keys = [self._data[i] for i in np.random.choice(len(self._data), self.batch_size, replace=True)]
        data = np.empty((self.batch_size, self.num_channels) + self.patch_size, dtype=np.float32)
        seg = np.empty((self.batch_size, 1) + self.patch_size, dtype=np.float32)
        for j, key in enumerate(keys):
            case = load_case(self.data_folder, key, mmap=True)
            force_fg = do_oversample(j, self.batch_size, self.oversample)
            lb = choose_bbox(case.data.shape[1:], self.patch_size, self.final_patch_size,
                             case.class_locations if force_fg else None)
            cut_patch(case.data, lb, self.patch_size, 0.0, data[j])
            cut_patch(case.seg[:1], lb, self.patch_size, -1.0, seg[j])
        return {"data": data, "seg": seg, "keys": keys}
