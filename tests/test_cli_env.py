"""Every command makes idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) before torch loads; a user's value wins."""
from __future__ import annotations

import os
import subprocess
import sys

CODE = ("import os, sys\nimport unetr_pp.cli\nloaded = 'torch' in sys.modules\nimport unetr_pp.cli.train\n"
        "print(loaded, os.environ['OMP_WAIT_POLICY'])")


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_passive_is_set_before_torch_is_imported():
    assert _run(None) == "False PASSIVE"


def test_the_users_setting_is_kept():
    assert _run("ACTIVE") == "False ACTIVE"
