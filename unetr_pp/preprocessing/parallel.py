"""`utilities.parallel.parallel_map` over cases, collecting every case's UnetrPPError into one error."""
from __future__ import annotations

import functools
from typing import Callable, Iterable, TypeVar

from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.parallel import parallel_map

T = TypeVar("T")
R = TypeVar("R")


def _catching(func: Callable[[T], R], item: T) -> tuple[bool, R | str]:
    try:
        return True, func(item)
    except UnetrPPError as err:
        return False, str(err)


def map_cases(func: Callable[[T], R], items: Iterable[T], num_processes: int, desc: str, what: str) -> list[R]:
    """[func(item) for item in items] in `num_processes` processes (1 = in this process), order kept.

    UnetrPPErrors of all items are gathered into one error (titled `what`) listing each problem.
    """
    outcomes = parallel_map(functools.partial(_catching, func), list(items), num_processes, desc, "case")
    problems = [value for ok, value in outcomes if not ok]
    if problems:
        raise problems_error(what, problems)
    return [value for _, value in outcomes]
