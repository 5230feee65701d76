"""Run one function over many cases in worker processes with a tqdm bar; collect every failure."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, TypeVar

from tqdm import tqdm

from unetr_pp.utilities.errors import UnetrPPError, problems_error

T = TypeVar("T")
R = TypeVar("R")


def map_cases(
    func: Callable[[T], R], items: Iterable[T], num_processes: int, desc: str, what: str
) -> list[R]:
    """[func(item) for item in items] in `num_processes` processes (1 = in this process), order kept.

    UnetrPPErrors of all items are gathered into one error listing each problem (titled `what`).
    """
    items = list(items)
    results: list = [None] * len(items)
    problems: list[str] = []
    with tqdm(total=len(items), desc=desc, unit="case", leave=False) as bar:
        if num_processes <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                try:
                    results[i] = func(item)
                except UnetrPPError as err:
                    problems.append(str(err))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(num_processes, len(items))) as pool:
                futures = {pool.submit(func, item): i for i, item in enumerate(items)}
                for future in as_completed(futures):
                    try:
                        results[futures[future]] = future.result()
                    except UnetrPPError as err:
                        problems.append(str(err))
                    bar.update()
    if problems:
        raise problems_error(what, problems)
    return results
