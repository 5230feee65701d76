"""The official UNETR++ reference data of tests/data/reference and its probe helper module (probe_weights.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REFERENCE = Path(__file__).parent / "data" / "reference"


def probe_module():
    """tests/data/reference/probe_weights.py imported as a module (it is data beside the reference files)."""
    spec = importlib.util.spec_from_file_location("probe_weights", REFERENCE / "probe_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
