import os
import subprocess
import sys

import pytest

from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.parallel import parallel_map, usable_cpus


def _square(x: int) -> int:
    return x * x


def _die(x: int) -> int:
    if x == 2:
        os._exit(3)  # a worker killed, e.g. by the out-of-memory killer
    return x


@pytest.mark.parametrize("num_processes", [1, 2])
def test_parallel_map_keeps_order(num_processes):
    assert parallel_map(_square, list(range(7)), num_processes, desc="squaring", unit="n") == [
        0, 1, 4, 9, 16, 25, 36]
    assert parallel_map(_square, [], num_processes, desc="squaring", unit="n") == []


def test_dead_worker_is_a_clear_error():
    with pytest.raises(UnetrPPError, match="a worker process died .* while checking; retry with fewer processes"):
        parallel_map(_die, [1, 2, 3], 2, desc="checking", unit="n")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_usable_cpus_follows_the_affinity_mask():
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from unetr_pp.utilities.parallel import usable_cpus; print(usable_cpus())")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "1\n"
