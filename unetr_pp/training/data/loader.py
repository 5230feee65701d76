"""Training/validation batch loaders: patch sampling + moreDA augmentation in batchgenerators workers."""
from __future__ import annotations

import os
import random
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from batchgenerators.transforms.abstract_transforms import Compose

from unetr_pp.io.plans import Configuration
from unetr_pp.preprocessing.preprocessed_data import load_case
from unetr_pp.training.data.augmentation import sampling_patch_size, training_transforms, validation_transforms
from unetr_pp.training.data.sampling import PatchDataLoader
from unetr_pp.training.data.workers import ForkServerAugmenter
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.parallel import default_workers

N_PROC_ENV = "unetr_pp_n_proc_DA"
DEFAULT_MAX_PROCESSES = 12
TRAIN_STREAM, VAL_STREAM = 0, 1


@dataclass
class LoaderSettings:
    """What the trainer decides: patch, batch, deep-supervision scales, oversampling, workers, seed, regions."""

    patch_size: tuple[int, int, int]
    batch_size: int
    deep_supervision_scales: list[tuple[float, float, float]] | None = None
    oversample_foreground_percent: float = 0.33
    num_processes: int | None = None
    seed: int | None = None
    regions: list[list[int]] | None = None
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    rank: int = 0  # DDP rank: ranks draw different patches/augmentations from the same base seed
    augmentation: str = "nnunet"  # "none": patches as sampled (a seed recipe augments them itself)


def default_num_processes() -> int:
    """`$unetr_pp_n_proc_DA` if set (>= 0), else min(12, usable CPUs)."""
    value = os.environ.get(N_PROC_ENV)
    if value is None or value.strip() == "":
        return default_workers(DEFAULT_MAX_PROCESSES)
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise UnetrPPError(f"environment variable {N_PROC_ENV}={value!r}: expected a whole number >= 0 "
                           f"(0 = augment in the main process)")
    return number


def derive_seeds(seed: int | None, rank: int, stream: int, count: int) -> list[int] | None:
    """Distinct 32-bit numpy seeds per (base seed, rank, loader stream, worker); None stays None (fresh entropy)."""
    if seed is None:
        return None
    return [int(np.random.SeedSequence([int(seed), rank, stream, i]).generate_state(1)[0]) for i in range(count)]


class BatchLoader:
    """Infinite iterator of batches {"data", "target" (list, one per DS scale), "keys"}; a context manager.

    With `num_processes` > 0 batches come from batchgenerators' MultiThreadedAugmenter with workers from a
    forkserver (`workers.ForkServerAugmenter`: never a copy of the trainer's memory; started on the first
    batch and stopped by `close()`, `with`, or garbage collection); with 0 they
    are made in the calling process with a private RNG, so a seed gives the same batches every time.
    """

    def __init__(self, loader: PatchDataLoader, transform: Compose, num_processes: int, seeds: list[int] | None,
                 pin_memory: bool, region_targets: bool) -> None:
        self.num_processes = num_processes
        self.region_targets = region_targets
        self.pin_memory = pin_memory
        self._loader, self._transform = loader, transform
        self._augmenter: ForkServerAugmenter | None = None
        if num_processes > 0:
            self._augmenter = ForkServerAugmenter(loader, transform, num_processes, 4, seeds)
            self._finalizer = weakref.finalize(self, _shutdown, self._augmenter)
        else:
            seed = seeds[0] if seeds else None
            self._np_state = np.random.RandomState(seed).get_state()
            self._py_state = random.Random(seed).getstate()

    def __iter__(self) -> BatchLoader:
        return self

    def __next__(self) -> dict:
        """Next batch: data float32 (B, C, *patch); target list of int64 (B, 1, *s) or float32 (B, R, *s)."""
        if self._augmenter is None:
            return self._to_torch(self._next_in_process())
        if not self._finalizer.alive:  # used again after close(): the workers restart, so guard them again
            self._finalizer = weakref.finalize(self, _shutdown, self._augmenter)
        try:
            return self._to_torch(next(self._augmenter))
        except RuntimeError as err:
            self.close()
            raise UnetrPPError(f"a data augmentation worker failed (its traceback is printed above): {err}") from None

    def _to_torch(self, batch: dict) -> dict:
        """numpy arrays (sent by the workers as plain arrays) -> torch tensors, pinned when CUDA is used."""
        tensors = [torch.from_numpy(np.ascontiguousarray(batch["data"], dtype=np.float32))]
        target_dtype = np.float32 if self.region_targets else np.int64
        tensors += [torch.from_numpy(np.ascontiguousarray(t, dtype=target_dtype)) for t in batch["target"]]
        if self.pin_memory:
            tensors = [t.pin_memory() for t in tensors]
        return {"data": tensors[0], "target": tensors[1:], "keys": list(batch["keys"])}

    def _next_in_process(self) -> dict:
        saved_np, saved_py = np.random.get_state(), random.getstate()
        np.random.set_state(self._np_state)
        random.setstate(self._py_state)
        try:
            return self._transform(**self._loader.generate_train_batch())
        finally:
            self._np_state, self._py_state = np.random.get_state(), random.getstate()
            np.random.set_state(saved_np)
            random.setstate(saved_py)

    def close(self) -> None:
        """Stop and join the worker processes (idempotent; a later `next()` starts them again)."""
        if self._augmenter is not None:
            self._finalizer()

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shutdown(augmenter: ForkServerAugmenter) -> None:
    augmenter._finish()


def _check_settings(settings: LoaderSettings) -> None:
    problems = []
    if len(settings.patch_size) != 3 or any(int(p) < 1 for p in settings.patch_size):
        problems.append(f"patch_size {settings.patch_size}: expected three positive integers")
    if settings.batch_size < 1:
        problems.append(f"batch_size {settings.batch_size}: expected >= 1")
    if not 0 <= settings.oversample_foreground_percent <= 1:
        problems.append(f"oversample_foreground_percent {settings.oversample_foreground_percent}: expected 0..1")
    if settings.num_processes is not None and settings.num_processes < 0:
        problems.append(f"num_processes {settings.num_processes}: expected >= 0")
    if (settings.seed is not None and settings.seed < 0) or settings.rank < 0:
        problems.append(f"seed {settings.seed} / rank {settings.rank}: expected >= 0")
    for scale in settings.deep_supervision_scales or []:
        if len(scale) != 3 or any(not 0 < s <= 1 for s in scale):
            problems.append(f"deep supervision scale {scale}: expected three factors in (0, 1]")
    if settings.regions is not None and (not settings.regions or any(not r for r in settings.regions)):
        problems.append(f"regions {settings.regions}: expected a list of non-empty label lists")
    if settings.augmentation not in ("nnunet", "none"):
        problems.append(f"augmentation {settings.augmentation!r}: expected nnunet or none")
    if any(a not in (0, 1, 2) for a in settings.mirror_axes):
        problems.append(f"mirror_axes {settings.mirror_axes}: expected axes among 0, 1, 2")
    if problems:
        raise problems_error("invalid data loader settings", problems)


def _check_cases(data_folder: Path, case_ids: Sequence[str], num_channels: int, what: str) -> None:
    """Every case loads (memory-mapped) and has the plans' channel count; all problems reported at once."""
    if not case_ids:
        raise UnetrPPError(f"no {what} cases given for {data_folder}")
    problems = []
    for case_id in case_ids:
        try:
            case = load_case(data_folder, case_id, mmap=True)
        except UnetrPPError as err:
            problems.append(str(err))
            continue
        if case.data.ndim != 4 or case.data.shape[0] != num_channels:
            problems.append(f"{data_folder / (case_id + '.npy')}: shape {case.data.shape}, expected "
                            f"({num_channels}, z, y, x) as in the plans")
        elif case.seg.shape[1:] != case.data.shape[1:]:
            problems.append(f"{data_folder / (case_id + '_seg.npy')}: shape {case.seg.shape} does not match the "
                            f"data {case.data.shape}")
    if problems:
        raise problems_error(f"{data_folder}: preprocessed {what} data not usable", problems)


def make_loaders(data_folder: Path, train_ids: Sequence[str], val_ids: Sequence[str],
                 config: Configuration, settings: LoaderSettings) -> tuple[BatchLoader, BatchLoader]:
    """(training loader with moreDA augmentation, validation loader with patch sampling only).

    Training samples the enlarged patch nnU-Net v1 uses for rotation/scaling and cuts it back to
    `settings.patch_size`; validation samples `patch_size` directly. Both oversample foreground.
    Validation uses max(num_processes // 2, 1) workers (0 stays in-process).
    """
    data_folder = Path(data_folder)
    _check_settings(settings)
    if not data_folder.is_dir():
        raise UnetrPPError(f"{data_folder}: preprocessed data folder not found (run unetr_pp_plan_and_preprocess)")
    num_channels = config.num_input_channels
    _check_cases(data_folder, train_ids, num_channels, "training")
    _check_cases(data_folder, val_ids, num_channels, "validation")
    patch = tuple(int(p) for p in settings.patch_size)
    use_mask = list(config.use_mask_for_norm)
    n_train = default_num_processes() if settings.num_processes is None else settings.num_processes
    n_val = max(n_train // 2, 1) if n_train > 0 else 0
    pin_memory = torch.cuda.is_available()
    regions = settings.regions is not None
    augment = settings.augmentation == "nnunet"
    train_loader = PatchDataLoader(data_folder, train_ids, sampling_patch_size(patch) if augment else patch, patch,
                                   settings.batch_size, num_channels, settings.oversample_foreground_percent)
    val_loader = PatchDataLoader(data_folder, val_ids, patch, patch, settings.batch_size, num_channels,
                                 settings.oversample_foreground_percent)
    train_tf = (training_transforms(patch, settings.mirror_axes, use_mask, settings.regions,
                                    settings.deep_supervision_scales) if augment
                else validation_transforms(settings.regions, settings.deep_supervision_scales))
    val_tf = validation_transforms(settings.regions, settings.deep_supervision_scales)
    train_seeds = derive_seeds(settings.seed, settings.rank, TRAIN_STREAM, max(n_train, 1))
    val_seeds = derive_seeds(settings.seed, settings.rank, VAL_STREAM, max(n_val, 1))
    train = BatchLoader(train_loader, train_tf, n_train, train_seeds, pin_memory, regions)
    val = BatchLoader(val_loader, val_tf, n_val, val_seeds, pin_memory, regions)
    return train, val
