"""Trainer registry: name -> Trainer subclass; extra trainers from the folder in env `unetr_pp_extra_trainers`.

An extra folder's `.py` files are imported; every Trainer subclass they define is found by its `name`
attribute or its class name.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

from unetr_pp.training.trainer import Trainer
from unetr_pp.utilities.errors import UnetrPPError

EXTRA_TRAINERS_VAR = "unetr_pp_extra_trainers"
TRAINER_MODULES = ("nnunet", "unetr_pp", "unetr", "swin_unetr", "uxnet", "repuxnet", "deformuxnet", "nnformer",
                   "transbts", "unest", "uxnet_k21")


def _subclasses(module) -> list[type[Trainer]]:
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Trainer) and obj is not Trainer and obj.__module__ == module.__name__]


def builtin_trainers() -> dict[str, type[Trainer]]:
    """Registered name -> class for the bundled trainers."""
    found: dict[str, type[Trainer]] = {}
    for name in TRAINER_MODULES:
        for cls in _subclasses(importlib.import_module(f"{__name__}.{name}")):
            found[cls.name] = cls
    return found


def extra_trainers() -> dict[str, type[Trainer]]:
    """Trainers defined in the `.py` files of `$unetr_pp_extra_trainers` (name and class name both map)."""
    folder = os.environ.get(EXTRA_TRAINERS_VAR)
    if not folder:
        return {}
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UnetrPPError(f"{EXTRA_TRAINERS_VAR}={folder}: not a folder")
    found: dict[str, type[Trainer]] = {}
    for file in sorted(path.glob("*.py")):
        module_name = f"unetr_pp_extra_trainers.{file.stem}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # a user's file may fail in any way
            sys.modules.pop(module_name, None)
            raise UnetrPPError(f"{file}: cannot import extra trainer file ({type(err).__name__}: {err})") from None
        for cls in _subclasses(module):
            found[cls.__name__] = cls
            found[cls.name] = cls
    return found


def get_trainer_class(name: str) -> type[Trainer]:
    """The trainer registered as `name` (bundled first, then extra); unknown -> error listing the valid names."""
    trainers = builtin_trainers()
    if name in trainers:
        return trainers[name]
    extra = extra_trainers()
    if name in extra:
        return extra[name]
    valid = sorted(trainers) + sorted(n for n in extra if n not in trainers)
    hint = "" if os.environ.get(EXTRA_TRAINERS_VAR) else f" (custom trainers: set {EXTRA_TRAINERS_VAR} to their folder)"
    raise UnetrPPError(f"unknown trainer {name!r}; valid trainers: {', '.join(valid)}{hint}")
