"""Read a released checkpoint (torch.save dict, bare state dict or TorchScript), recognise its source layout
and rename its keys to ours, with the regex tables of `key_maps.json` (data, one table per source)."""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json

KEY_MAPS = Path(__file__).with_name("key_maps.json")
MODULE_PREFIX = "module."
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


@dataclass(frozen=True)
class SourceLayout:
    """One released layout: our network, how to recognise it, how its keys map to ours."""

    name: str
    network: str
    marker: re.Pattern
    rules: tuple[tuple[re.Pattern, str], ...]
    optional: tuple[re.Pattern, ...]
    encoder_only: bool

    def rename(self, key: str) -> str:
        """Our name of the (module.-free) key `key`: the first matching rule's replacement, else unchanged."""
        for pattern, replacement in self.rules:
            if pattern.search(key):
                return pattern.sub(replacement, key, count=1)
        return key

    def is_optional(self, our_key: str) -> bool:
        """True for our keys a file of this source may lack (never used by the forward pass)."""
        return any(p.search(our_key) for p in self.optional)


@lru_cache(maxsize=1)
def layouts() -> dict[str, SourceLayout]:
    """The source layouts of key_maps.json by name."""
    table = load_json(KEY_MAPS)["sources"]
    return {name: SourceLayout(name, entry["network"], re.compile(entry["marker"]),
                               tuple((re.compile(k), v) for k, v in entry.get("rules", {}).items()),
                               tuple(re.compile(p) for p in entry.get("optional", [])),
                               bool(entry.get("encoder_only", False)))
            for name, entry in table.items()}


SOURCES: tuple[str, ...] = ("unetr_pp", "uxnet", "repuxnet", "deformuxnet", "unetr", "swin_unetr")


@dataclass
class ReleasedFile:
    """A checkpoint's tensors (module. prefix dropped) and what else it held."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    content: dict
    torchscript: bool


def _torchscript(path: Path) -> dict[str, torch.Tensor] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception:  # not TorchScript either: the caller reports the torch.load error
        return None
    return {k: v.detach() for k, v in module.state_dict().items()}


def _tensors(content: object) -> dict[str, torch.Tensor] | None:
    if isinstance(content, Mapping):
        for key in STATE_DICT_KEYS:
            inner = content.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            return dict(content)
    return None


def read_released(path: str | Path) -> ReleasedFile:
    """Load a released checkpoint; UnetrPPError naming the file when it is missing, damaged or holds no weights.

    Unpickles fully (weights_only=False: official files hold numpy scalars): only import files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise UnetrPPError(f"{path}: checkpoint file not found")
    torchscript = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch/pickle raise many types for a damaged or foreign file
        tensors = _torchscript(path)
        if tensors is None:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            raise UnetrPPError(f"{path}: not a readable torch checkpoint, expected a torch.save file or a "
                               f"TorchScript archive ({reason})") from None
        content, torchscript = {"state_dict": tensors}, True
    if isinstance(content, torch.nn.Module):  # torch.load hands TorchScript archives to torch.jit.load
        torchscript = isinstance(content, torch.jit.ScriptModule)
        content = {"state_dict": {k: v.detach() for k, v in content.state_dict().items()}}
    tensors = _tensors(content)
    if tensors is None:
        found = sorted(map(str, content))[:8] if isinstance(content, Mapping) else type(content).__name__
        raise UnetrPPError(f"{path}: no network weights in the checkpoint, expected a state dict or a dict with "
                           f"'state_dict' (found {found})")
    prefixed = all(k.startswith(MODULE_PREFIX) for k in tensors)
    if prefixed:
        tensors = {k[len(MODULE_PREFIX):]: v for k, v in tensors.items()}
    return ReleasedFile(path, tensors, content if isinstance(content, dict) else {}, torchscript)


def detect_source(state_dict: Mapping[str, torch.Tensor]) -> SourceLayout | None:
    """The layout whose marker most keys match (None when no layout's marker matches any key)."""
    counts = {name: sum(1 for k in state_dict if layout.marker.search(k)) for name, layout in layouts().items()}
    best = max(counts, key=counts.get)
    return layouts()[best] if counts[best] else None


def describe_keys(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A short description of what a state dict's keys start with, for error messages."""
    heads = sorted({k.split(".", 1)[0] for k in state_dict})
    return f"{len(state_dict)} tensors, top-level names {heads[:6]}{' ...' if len(heads) > 6 else ''}"


def source_layout(name: str | None, state_dict: Mapping[str, torch.Tensor], path: Path) -> SourceLayout:
    """The layout `name` (checked against the keys), or the recognised one when `name` is None."""
    found = detect_source(state_dict)
    if name is None:
        if found is None:
            raise UnetrPPError(f"{path}: keys of no known architecture ({describe_keys(state_dict)}); expected "
                               f"one of {', '.join(SOURCES)} (give --source to force one)")
        return found
    if name not in layouts():
        raise UnetrPPError(f"unknown --source {name!r}; choose one of {', '.join(SOURCES)}")
    wanted = layouts()[name]
    if not any(wanted.marker.search(k) for k in state_dict):
        looks = f"; it looks like a {found.name} checkpoint" if found is not None else ""
        raise UnetrPPError(f"{path}: not a {name} checkpoint, expected keys matching {wanted.marker.pattern}{looks}")
    return wanted


def rename_keys(state_dict: Mapping[str, torch.Tensor], layout: SourceLayout) -> dict[str, torch.Tensor]:
    """The state dict with our key names (UnetrPPError when two keys map to one name)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        ours = layout.rename(key)
        if ours in out:
            raise UnetrPPError(f"key map {layout.name}: two keys of the file map to {ours!r}")
        out[ours] = value
    return out
