"""The package layout is the data flow: no module imports from a later stage (docs/architecture.md "Layers")."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "unetr_pp"
# earliest first; a module may import its own layer and earlier ones
LAYERS = ["utilities", "paths", "io", "dataset", "preprocessing", "planning", "networks", "training", "inference",
          "evaluation", "comparison"]
ORCHESTRATION = {"experiment", "cli"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "unetr_pp" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def layer_violations() -> list[str]:
    """'<file> imports <module>' for every import of a later stage outside the orchestration."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        own = _layer(".".join(relative.parts))
        if own is None or own == "__init__" or own in ORCHESTRATION:
            continue
        assert own in LAYERS, f"{path}: package {own!r} has no place in LAYERS"
        for name in _imports(path):
            other = _layer(name)
            if other in ORCHESTRATION or (other in LAYERS and LAYERS.index(other) > LAYERS.index(own)):
                found.append(f"{relative} imports {name}")
    return found


def test_no_module_imports_a_later_stage():
    assert layer_violations() == []


def test_the_check_finds_a_violation(tmp_path, monkeypatch):
    fake = tmp_path / "unetr_pp"
    (fake / "io").mkdir(parents=True)
    (fake / "io" / "bad.py").write_text("from unetr_pp.training.trainer import Trainer\n")
    (fake / "cli").mkdir()
    (fake / "cli" / "ok.py").write_text("from unetr_pp.training.trainer import Trainer\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert layer_violations() == ["unetr_pp/io/bad imports unetr_pp.training.trainer"]
