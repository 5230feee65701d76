"""Cross-validation splits (`splits_final.json`): sklearn-equivalent KFold, user files, preset folds."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.files import load_json, save_json

SPLITS_FILE = "splits_final.json"
NUM_FOLDS = 5
SPLIT_SEED = 12345


def kfold_splits(case_ids: Sequence[str], n_splits: int = NUM_FOLDS,
                 seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """sklearn `KFold(n_splits, shuffle=True, random_state=seed).split(sorted ids)` without sklearn.

    sklearn shuffles `arange(n)` with `RandomState(seed).shuffle` (identical to `.permutation(n)`), gives
    the first `n % n_splits` folds one extra case, and yields each fold's test indices in that shuffled
    order and the train indices ascending. nnU-Net v1 maps both through the sorted ids, so `val` keeps
    the permutation order and `train` is sorted.
    """
    ids = sorted(case_ids)
    n = len(ids)
    order = np.random.RandomState(seed).permutation(n)
    sizes = np.full(n_splits, n // n_splits, dtype=int)
    sizes[: n % n_splits] += 1
    splits, start = [], 0
    for size in sizes:
        val_idx = order[start:start + size]
        start += size
        train_mask = np.ones(n, dtype=bool)
        train_mask[val_idx] = False
        splits.append({"train": [ids[i] for i in np.flatnonzero(train_mask)], "val": [ids[i] for i in val_idx]})
    return splits


def _validate(splits: object, path: Path, case_ids: Sequence[str]) -> list[dict[str, list[str]]]:
    """Check a loaded splits file: a non-empty list of {"train": [...], "val": [...]} over known case ids."""
    if not isinstance(splits, list) or not splits:
        raise UnetrPPError(f"{path}: malformed splits file, expected a non-empty list of "
                           f'{{"train": [...], "val": [...]}} (one per fold)')
    known = set(case_ids)
    problems = []
    for k, fold in enumerate(splits):
        if not isinstance(fold, dict) or not all(isinstance(fold.get(key), list) for key in ("train", "val")):
            problems.append(f'fold {k}: expected {{"train": [...], "val": [...]}}')
            continue
        ids = fold["train"] + fold["val"]
        if not all(isinstance(i, str) for i in ids):
            problems.append(f"fold {k}: case ids must be strings")
            continue
        if not fold["train"] or not fold["val"]:
            problems.append(f"fold {k}: empty {'train' if not fold['train'] else 'val'} list")
        unknown = sorted(set(ids) - known)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
            problems.append(f"fold {k}: unknown case id(s) not in the preprocessed data: {shown}")
    if problems:
        raise problems_error(f"{path}: invalid splits file", problems)
    return [{"train": list(f["train"]), "val": list(f["val"])} for f in splits]


def _apply_preset(splits: list[dict[str, list[str]]], preset_splits: dict, case_ids: Sequence[str]) -> None:
    """Replace each preset fold (`{"0": {"val": [...]}}`) by train = all other ids, val = the given ids."""
    known = set(case_ids)
    for fold_key, fold in preset_splits.items():
        val = list(fold.get("val") or []) if isinstance(fold, dict) else []
        index = int(fold_key) if str(fold_key).isdigit() else -1
        missing = sorted(set(val) - known)
        if not val or missing or not 0 <= index < len(splits):
            why = f"case id(s) not found: {', '.join(missing)}" if missing else "not a valid preset fold"
            print(f"warning: preset split for fold {fold_key} not used ({why}); keeping the KFold split",
                  file=sys.stderr)
            continue
        chosen = set(val)
        splits[index] = {"train": sorted(i for i in case_ids if i not in chosen), "val": val}


def load_or_create_splits(task_folder: Path, case_ids: Sequence[str],
                          preset_splits: dict | None = None) -> list[dict[str, list[str]]]:
    """`<task_folder>/splits_final.json`: reuse (validated) if present, else KFold(5, 12345) + preset, saved.

    `case_ids` are the cases of the preprocessed data. A preset (plans["preset_splits"]) replaces its folds
    only when all of its validation ids exist (else a warning is printed and the KFold fold kept).
    """
    path = Path(task_folder) / SPLITS_FILE
    if path.exists():
        return _validate(load_json(path), path, case_ids)
    ids = sorted(set(case_ids))
    if len(ids) < NUM_FOLDS:
        raise UnetrPPError(f"{path}: cannot create {NUM_FOLDS}-fold cross-validation splits from {len(ids)} "
                           f"case(s); train on fold 'all' instead (or write {SPLITS_FILE} yourself)")
    splits = kfold_splits(ids)
    if preset_splits:
        _apply_preset(splits, preset_splits, ids)
    save_json(splits, path)
    return splits


def fold_cases(splits: list[dict], fold: str | int, case_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(train ids, val ids) of `fold`; fold 'all' -> (all ids, all ids) sorted, without looking at `splits`."""
    if str(fold) == "all":
        ids = sorted(case_ids)
        return ids, list(ids)
    try:
        index = int(fold)
    except (TypeError, ValueError):
        raise UnetrPPError(f"fold {fold!r} is not a fold number or 'all'") from None
    if not 0 <= index < len(splits):
        raise UnetrPPError(f"fold {index} is outside the split: {SPLITS_FILE} has {len(splits)} folds "
                           f"(0-{len(splits) - 1}); use one of those or 'all'")
    known = set(case_ids)
    train, val = list(splits[index]["train"]), list(splits[index]["val"])
    missing = sorted(set(train + val) - known)
    if missing:
        raise UnetrPPError(f"fold {index} of {SPLITS_FILE} names case(s) without preprocessed data: "
                           f"{', '.join(missing)}")
    return train, val
