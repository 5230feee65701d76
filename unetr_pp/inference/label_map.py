"""External testing: map a model's predicted labels onto another dataset's reference labels (`'1+2:1,3:2'`).

`PRED:REF` entries: the predicted label ids on the left (several joined by `+` are merged) become the
reference label id on the right; every predicted label not named in the map becomes background.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from unetr_pp.utilities.errors import UnetrPPError

_ENTRY_RE = re.compile(r"^\s*(\d+(?:\s*\+\s*\d+)*)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class LabelMap:
    """Ordered entries (predicted ids, reference id) and the text they were parsed from."""

    entries: tuple[tuple[tuple[int, ...], int], ...]
    text: str

    @property
    def reference_labels(self) -> tuple[int, ...]:
        """The reference label ids the map produces, sorted."""
        return tuple(sorted({ref for _, ref in self.entries}))

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """(z, y, x) predicted labels -> the same shape in reference label ids (unmapped labels -> 0)."""
        top = max(self.reference_labels)
        out = np.zeros(labels.shape, dtype=np.uint8 if top < 256 else np.uint16)
        for ids, ref in self.entries:
            out[labels == ids[0] if len(ids) == 1 else np.isin(labels, ids)] = ref
        return out


def parse_label_map(text: str) -> LabelMap:
    """`'1+2:1,3:2'` -> LabelMap; UnetrPPError naming the bad entry (ids must be positive, each predicted once)."""
    entries: list[tuple[tuple[int, ...], int]] = []
    seen: dict[int, str] = {}
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise UnetrPPError(f"--label_map {text!r}: empty; expected PRED:REF entries such as '1+2:1,3:2'")
    for part in parts:
        match = _ENTRY_RE.match(part)
        if not match:
            raise UnetrPPError(f"--label_map entry {part.strip()!r}: expected PRED:REF with label ids, e.g. 1+2:1")
        ids = tuple(int(i) for i in match.group(1).split("+"))
        ref = int(match.group(2))
        if min(ids) < 1 or ref < 1:
            raise UnetrPPError(f"--label_map entry {part.strip()!r}: label ids must be positive (unmapped "
                               "predicted labels become background anyway)")
        for label in ids:
            if label in seen:
                raise UnetrPPError(f"--label_map: predicted label {label} appears in {seen[label]!r} and "
                                   f"{part.strip()!r}")
            seen[label] = part.strip()
        entries.append((ids, ref))
    return LabelMap(tuple(entries), ",".join(p.strip() for p in parts))
