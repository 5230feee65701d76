"""The one way work runs in parallel: spawned worker processes (never forked from a process that holds a
network or large arrays), their default count from the CPUs this process may use, and a progress bar."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence, TypeVar

from tqdm import tqdm

from unetr_pp.utilities.errors import UnetrPPError

T = TypeVar("T")
R = TypeVar("R")


def usable_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_workers(cap: int) -> int:
    """Default worker count: the usable CPUs (affinity mask respected), at most `cap`, at least 1."""
    return max(1, min(int(cap), usable_cpus()))


DASK_INSTALL = 'pip install "unetr_pp[dask]"'
DASK_RETRIES = 2
_dask_client = None


@contextlib.contextmanager
def dask_runner(address: str | None):
    """Within this block, per-case work runs on the Dask scheduler at `address` (None: local processes).

    Workers must have unetr_pp installed and see the same data paths."""
    global _dask_client
    if address is None:
        yield
        return
    try:
        import distributed
    except ImportError:
        raise UnetrPPError(f"--dask needs dask distributed: {DASK_INSTALL}") from None
    try:
        client = distributed.Client(address, timeout=30)
    except (OSError, TimeoutError) as e:
        raise UnetrPPError(f"--dask {address}: cannot reach the scheduler ({e})") from None
    _dask_client = client
    try:
        yield
    finally:
        _dask_client = None
        client.close()


class _DaskExecutor(Executor):
    """concurrent.futures view of the active Dask client (retries lost workers; never closes the client)."""

    def submit(self, fn, /, *args, **kwargs):
        return _dask_client.get_executor(pure=False, retries=DASK_RETRIES).submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


def spawn_pool(workers: int) -> Executor:
    """A process pool whose workers are spawned, not forked (the Dask cluster inside `dask_runner`)."""
    if _dask_client is not None:
        return _DaskExecutor()
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


MEMINFO = "/proc/meminfo"


def available_memory() -> int | None:
    """Bytes of memory available to new work (MemAvailable of /proc/meminfo), None where it is unknown."""
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def workers_for_memory(requested: int, bytes_per_worker: int) -> int:
    """`requested` worker processes, lowered (to at least 1) so that `bytes_per_worker` each fit into the
    available memory; prints one line when it lowers the count."""
    available = available_memory()
    if available is None or bytes_per_worker <= 0:
        return requested
    fits = max(1, available // bytes_per_worker)
    if fits >= requested:
        return requested
    gb = 2 ** 30
    print(f"{fits} worker process(es) instead of {requested}: about {bytes_per_worker / gb:.1f} GB each for the "
          f"largest case, {available / gb:.1f} GB of memory available")
    return int(fits)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], num_processes: int, desc: str, unit: str) -> list[R]:
    """`[fn(item) for item in items]` in order; in `spawn` worker processes when `num_processes` > 1.

    `fn` must be picklable (a module-level function or a functools.partial of one). A worker that dies
    (e.g. killed for memory) raises UnetrPPError instead of a deep traceback.
    """
    if _dask_client is not None:
        return _dask_map(fn, items, desc, unit)
    results: list[R] = []
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not items) as bar:
        if num_processes <= 1 or len(items) <= 1:
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        try:
            with spawn_pool(min(num_processes, len(items))) as pool:
                for result in pool.map(fn, items):
                    results.append(result)
                    bar.update()
        except BrokenProcessPool:
            raise UnetrPPError(f"a worker process died (out of memory?) while {desc}; retry with fewer "
                               f"processes") from None
    return results


def _dask_map(fn: Callable[[T], R], items: Sequence[T], desc: str, unit: str) -> list[R]:
    """`[fn(item) for item in items]` on the active Dask client, each case retried on a lost worker."""
    import distributed
    futures = _dask_client.map(fn, list(items), pure=False, retries=DASK_RETRIES)
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not items) as bar:
        for _ in distributed.as_completed(futures):
            bar.update()
    return _dask_client.gather(futures)
