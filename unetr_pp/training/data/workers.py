"""Augmentation worker processes that never copy the trainer's memory.

batchgenerators' `MultiThreadedAugmenter` starts its workers with the default start method, `fork` on
Linux: a worker started after the trainer built its network, optimizer and activations is a copy-on-write
snapshot of that heap, and every page the trainer rewrites afterwards (it keeps freed memory for reuse)
becomes a private copy in the worker, so the process tree needs about twice the trainer's memory.
`ForkServerAugmenter` starts its workers from a `forkserver` (a fresh interpreter that has only imported
the data pipeline), or with `spawn` where the platform has no forkserver: whenever a worker starts,
it holds the data loader and transforms it was sent, nothing of the trainer.
"""
from __future__ import annotations

import multiprocessing
import threading
from queue import Queue as ThreadQueue

import torch
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter, producer, results_loop
from threadpoolctl import threadpool_limits

PRELOAD_MODULES = ["unetr_pp.training.data.loader"]


def worker_context() -> multiprocessing.context.BaseContext:
    """The `forkserver` context (preloading the data pipeline once), else `spawn`."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD_MODULES)
        return context
    return multiprocessing.get_context("spawn")


class ForkServerAugmenter(MultiThreadedAugmenter):
    """`MultiThreadedAugmenter` whose workers, queues and events come from `worker_context()`.

    The data loader and the transform are pickled to each worker when it starts.
    """

    def __init__(self, data_loader, transform, num_processes: int, num_cached_per_queue: int,
                 seeds: list[int] | None) -> None:
        super().__init__(data_loader, transform, num_processes, num_cached_per_queue, seeds=seeds, pin_memory=False)
        self.context = worker_context()
        self.abort_event = self.context.Event()
        self.pause_event = self.context.Event()

    def _start(self) -> None:
        """Start the workers and the thread that collects their batches round-robin (seeded order)."""
        if self.was_initialized:
            return
        self._finish()
        self.abort_event.clear()
        self.pause_event.clear()
        self._queue_ctr = self._end_ctr = 0
        if hasattr(self.generator, "was_initialized"):
            self.generator.was_initialized = False
        with threadpool_limits(limits=1, user_api="blas"):
            for i in range(self.num_processes):
                self._queues.append(self.context.Queue(self.num_cached_per_queue))
                process = self.context.Process(target=producer, daemon=True, args=(
                    self._queues[i], self.generator, self.transform, i, self.seeds[i], self.abort_event,
                    self.pause_event, self.wait_time))
                process.start()
                self._processes.append(process)
        gpu = torch.cuda.current_device() if torch.cuda.is_available() else None
        self.pin_memory_queue = ThreadQueue(max(3, self.num_cached_per_queue * self.num_processes // 2))
        self.pin_memory_thread = threading.Thread(target=results_loop, daemon=True, args=(
            self._queues, self.pin_memory_queue, self.abort_event, False, gpu, self.wait_time, self._processes))
        self.pin_memory_thread.start()
        self.was_initialized = True
