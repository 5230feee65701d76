"""User-facing errors and the CLI wrapper that turns them into one clear message and exit code."""
from __future__ import annotations

import functools
import sys
from typing import Callable, Iterable, Sequence


class UnetrPPError(Exception):
    """An error caused by the user's input or environment; printed without a traceback."""

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)


def problems_error(what: str, problems: Iterable[str]) -> UnetrPPError:
    """Build an error that lists every problem (one per line) under a one-line summary."""
    problems = list(problems)
    return UnetrPPError(f"{what}: {len(problems)} problem(s) found", problems)


def cli_main(func: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI `main(argv)` so UnetrPPError prints `error: ...` to stderr and exits with 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            code = func(*args, **kwargs)
        except UnetrPPError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return int(code or 0)

    return wrapper
