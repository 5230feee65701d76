"""Decide nnU-Net's largest-component postprocessing from cross-validation predictions (mean Dice over all cases).

The rule (nnU-Net v2 `determine_postprocessing`):
1. Keep only the largest component of the whole foreground (all foreground label ids together). Applied
   when the mean foreground Dice (mean of the per-target mean Dice) rises strictly and no target's mean
   Dice falls.
2. Then, when there is more than one target, for each target in order (on top of what step 1 decided):
   keep only the largest component of that target's label ids; applied when that target's mean Dice
   rises strictly.
Dice per case and target as the evaluator's default (`--empty nan`): undefined when both masks are
empty, those cases are left out of the mean.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from unetr_pp.evaluation.folders import as_label_array
from unetr_pp.evaluation.protocols import Target
from unetr_pp.io.images import read_image
from unetr_pp.inference.postprocessing import Step, apply_postprocessing

RULE = ("nnU-Net v2: keep the largest 26-connected component of the whole foreground if the mean foreground Dice "
        "rises and no target's mean Dice falls; then per target if its mean Dice rises")
Pair = tuple[str, Path, Path]
Variant = tuple[Step | None, tuple[Target, ...]]


def _dice(reference: np.ndarray, prediction: np.ndarray, ids: Step) -> float | None:
    ref = reference == ids[0] if len(ids) == 1 else np.isin(reference, ids)
    pred = prediction == ids[0] if len(ids) == 1 else np.isin(prediction, ids)
    total = int(np.count_nonzero(ref)) + int(np.count_nonzero(pred))
    return None if total == 0 else 2.0 * np.count_nonzero(ref & pred) / total


def _case_dice(pair: Pair, steps: tuple[Step, ...], variants: Sequence[Variant]) -> list[dict[str, float | None]]:
    """Worker: Dice of each variant's targets for one case (prediction after `steps`, then the variant's step)."""
    _, ref_path, pred_path = pair
    reference = as_label_array(read_image(ref_path)[0], ref_path)
    prediction = apply_postprocessing(as_label_array(read_image(pred_path)[0], pred_path), steps)
    result = []
    for extra, targets in variants:
        processed = prediction if extra is None else apply_postprocessing(prediction, (extra,))
        result.append({t.name: _dice(reference, processed, t.ids) for t in targets})
    return result


def _mean_dice(pairs: Sequence[Pair], steps: tuple[Step, ...], variants: Sequence[Variant], num_processes: int,
               desc: str) -> list[dict[str, float | None]]:
    """Per variant: {target: mean Dice over the cases where it is defined (None if never)}."""
    bar = {"total": len(pairs), "desc": desc, "unit": "case"}
    args = ([steps] * len(pairs), [list(variants)] * len(pairs))
    if num_processes <= 1 or len(pairs) == 1:
        per_case = [_case_dice(pair, steps, variants) for pair in tqdm(pairs, **bar)]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(num_processes, len(pairs)), mp_context=context) as pool:
            per_case = list(tqdm(pool.map(_case_dice, pairs, *args), **bar))
    means = []
    for index, (_, targets) in enumerate(variants):
        values = {t.name: [case[index][t.name] for case in per_case if case[index][t.name] is not None]
                  for t in targets}
        means.append({name: float(np.mean(v)) if v else None for name, v in values.items()})
    return means


def _foreground(means: dict[str, float | None]) -> float | None:
    defined = [v for v in means.values() if v is not None]
    return float(np.mean(defined)) if defined else None


def _rises(after: float | None, before: float | None) -> bool:
    return after is not None and before is not None and after > before


def _disjoint(targets: Sequence[Target]) -> bool:
    ids = [i for t in targets for i in t.ids]
    return len(ids) == len(set(ids))


def determine_postprocessing(pairs: Sequence[Pair], targets: Sequence[Target], num_processes: int = 1) -> dict:
    """The decision over all `pairs` (case, reference, prediction): steps, and mean Dice before/after each candidate.

    Returns {"rule", "connectivity", "num_cases", "foreground": {...}, "per_target": [...], "steps": [{name, ids}]}.
    """
    targets = tuple(targets)
    foreground_ids = tuple(sorted({i for t in targets for i in t.ids}))
    base, whole = _mean_dice(pairs, (), [(None, targets), (foreground_ids, targets)], num_processes,
                             "postprocessing: foreground")
    worse = [t.name for t in targets if base[t.name] is not None and (whole[t.name] or 0.0) < base[t.name]]
    use_whole = _rises(_foreground(whole), _foreground(base)) and not worse
    decision = {"rule": RULE, "connectivity": 26, "num_cases": len(pairs),
                "foreground": {"ids": list(foreground_ids), "dice_before": _foreground(base),
                               "dice_after": _foreground(whole), "targets_worse": worse, "applied": use_whole},
                "per_target": [], "steps": []}
    steps: list[Step] = [foreground_ids] if use_whole else []
    if use_whole:
        decision["steps"].append({"name": "foreground", "ids": list(foreground_ids)})
    current = whole if use_whole else base
    if len(targets) < 2:
        return decision
    disjoint = _disjoint(targets)
    if disjoint:  # a target's step leaves the others' masks alone: one pass decides every target
        results = _mean_dice(pairs, tuple(steps), [(t.ids, (t,)) for t in targets], num_processes,
                             "postprocessing: per target")
    for index, target in enumerate(targets):
        if disjoint:
            after = results[index]
        else:
            after = _mean_dice(pairs, tuple(steps), [(target.ids, targets)], num_processes,
                               f"postprocessing: {target.name}")[0]
        applied = _rises(after[target.name], current[target.name])
        decision["per_target"].append({"name": target.name, "ids": list(target.ids),
                                       "dice_before": current[target.name], "dice_after": after[target.name],
                                       "applied": applied})
        if applied:
            steps.append(target.ids)
            decision["steps"].append({"name": target.name, "ids": list(target.ids)})
            if not disjoint:
                current = after
    return decision
