"""Evaluation protocols: which labels (or label regions) are scored, under which names.

A `Target` is one scored structure: a label id, or a region (union of ids, BraTS WT/TC/ET).
A `Protocol` is an ordered list of targets plus the label values that may legitimately appear in
the files (`allowed`, None = anything goes); a value outside `allowed` is an error (see
docs/evaluation.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from unetr_pp.io import DatasetInfo, load_dataset_json
from unetr_pp.inference.label_map import LabelMap
from unetr_pp.utilities.errors import UnetrPPError


@dataclass(frozen=True)
class Target:
    """One scored structure: `name` (report key), label `ids` (several = region), `short` table header."""

    name: str
    ids: tuple[int, ...]
    short: str = ""

    @property
    def header(self) -> str:
        """Column header for summary.md."""
        return self.short or self.name


@dataclass(frozen=True)
class Protocol:
    """Ordered targets, the label values allowed in the files (None: no check), and a report name."""

    name: str
    targets: tuple[Target, ...]
    allowed: frozenset[int] | None


_BTCV = (
    (1, "spleen", "Spl"),
    (2, "right_kidney", "RKid"),
    (3, "left_kidney", "LKid"),
    (4, "gallbladder", "Gal"),
    (5, "esophagus", "Eso"),
    (6, "liver", "Liv"),
    (7, "stomach", "Sto"),
    (8, "aorta", "Aor"),
    (9, "inferior_vena_cava", "IVC"),
    (10, "portal_and_splenic_vein", "PSV"),
    (11, "pancreas", "Pan"),
    (12, "right_adrenal_gland", "RAG"),
    (13, "left_adrenal_gland", "LAG"),
)
_SYNAPSE_IDS = (1, 2, 3, 4, 6, 7, 8, 11)
_ACDC = ((1, "RV", "RV"), (2, "Myo", "Myo"), (3, "LV", "LV"))
_BRATS_LABELS = ((1, "edema", "ED"), (2, "non_enhancing_tumor", "NET"), (3, "enhancing_tumor", "ET"))
_AMOS = _BTCV[:8] + (  # AMOS 2022 dataset.json: ids 1-8 as BTCV, then its own
    (9, "postcava", "IVC"),
    (10, "pancreas", "Pan"),
    (11, "right_adrenal_gland", "RAG"),
    (12, "left_adrenal_gland", "LAG"),
    (13, "duodenum", "Duo"),
    (14, "bladder", "Bla"),
    (15, "prostate_uterus", "Pro/Ut"),
)
_FLARE = ((1, "liver", "Liv"), (2, "kidney", "Kid"), (3, "spleen", "Spl"), (4, "pancreas", "Pan"))  # FLARE 2021
_FETA = (  # FeTA 2021
    (1, "external_csf", "eCSF"),
    (2, "grey_matter", "GM"),
    (3, "white_matter", "WM"),
    (4, "ventricles", "Vent"),
    (5, "cerebellum", "Cereb"),
    (6, "deep_grey_matter", "dGM"),
    (7, "brainstem", "BS"),
)
# structure + lesion releases: label 1 = organ (without the lesion), 2 = lesion; the organ is scored with its lesion
_LESION_TASKS = {
    "kits": ("kidney", "Kid", "tumor", "Tum"),  # KiTS 2019
    "lits": ("liver", "Liv", "tumor", "Tum"),  # LiTS
    "msd_pancreas": ("pancreas", "Pan", "tumor", "Tum"),  # MSD Task07: pancreas, cancer
    "msd_hepatic_vessel": ("vessel", "Ves", "tumor", "Tum"),  # MSD Task08: vessel, tumour
}


def _labels(entries: Iterable[tuple[int, str, str]]) -> tuple[Target, ...]:
    return tuple(Target(name, (label,), short) for label, name, short in entries)


PROTOCOLS: dict[str, Protocol] = {
    "synapse": Protocol(
        "synapse", _labels(e for e in _BTCV if e[0] in _SYNAPSE_IDS), frozenset(range(14))
    ),
    "btcv": Protocol("btcv", _labels(_BTCV), frozenset(range(14))),
    "acdc": Protocol("acdc", _labels(_ACDC), frozenset(range(4))),
    "brats": Protocol(
        "brats",
        (Target("WT", (1, 2, 3)), Target("TC", (2, 3)), Target("ET", (3,))),
        frozenset(range(4)),
    ),
    "amos": Protocol("amos", _labels(_AMOS), frozenset(range(16))),
    "flare": Protocol("flare", _labels(_FLARE), frozenset(range(5))),
    "feta": Protocol("feta", _labels(_FETA), frozenset(range(8))),
    **{
        name: Protocol(name, (Target(organ, (1, 2), organ_short), Target(lesion, (2,), lesion_short)),
                       frozenset(range(3)))
        for name, (organ, organ_short, lesion, lesion_short) in _LESION_TASKS.items()
    },
}
ALL_LABELS = "all-labels"
PROTOCOL_CHOICES = (*PROTOCOLS, ALL_LABELS)
_LABEL_NAMES = {
    "synapse": _labels(_BTCV),
    "btcv": _labels(_BTCV),
    "acdc": _labels(_ACDC),
    "brats": _labels(_BRATS_LABELS),
    "amos": _labels(_AMOS),
    "flare": _labels(_FLARE),
    "feta": _labels(_FETA),
    **{
        name: (Target(f"{organ}_only", (1,), short), Target(lesion, (2,), lesion_short))
        for name, (organ, short, lesion, lesion_short) in _LESION_TASKS.items()
    },
}


def label_target(label: int) -> Target:
    """Target for a label id without a known name (`label_<id>`)."""
    return Target(f"label_{label}", (int(label),))


def as_targets(labels_or_regions: Sequence[Target] | Mapping[str, int | Sequence[int]] | Sequence[int]) -> list[Target]:
    """Normalise targets given as Targets, {name: id or [ids]} or a list of label ids; checks them."""
    if isinstance(labels_or_regions, Mapping):
        targets = [
            Target(str(name), (int(ids),) if isinstance(ids, Integral) else tuple(int(i) for i in ids))
            for name, ids in labels_or_regions.items()
        ]
    else:
        targets = [t if isinstance(t, Target) else label_target(int(t)) for t in labels_or_regions]
    if not targets:
        raise UnetrPPError("no labels to evaluate")
    names = [t.name for t in targets]
    for t in targets:
        if not t.ids or min(t.ids) <= 0:
            raise UnetrPPError(f"target {t.name!r}: label ids must be positive integers, got {list(t.ids)}")
        if names.count(t.name) > 1:
            raise UnetrPPError(f"target name {t.name!r} is used twice")
    return targets


def dataset_protocol(info: DatasetInfo) -> Protocol:
    """All foreground labels of a dataset.json (its regions for a region task), with their names."""
    if info.regions:
        targets = tuple(Target(name, tuple(ids)) for name, ids in info.regions.items())
    else:
        targets = tuple(Target(name, (label,)) for label, name in info.labels.items() if label != 0)
    if not targets:
        raise UnetrPPError(f"{info.root / 'dataset.json'}: no foreground labels")
    return Protocol("dataset.json", tuple(as_targets(targets)), frozenset(info.label_values))


def find_dataset_json(ref_dir: Path) -> Path | None:
    """dataset.json beside the reference files or one folder up (labelsTr inside a task), else None."""
    for folder in (ref_dir, ref_dir.parent):
        if (folder / "dataset.json").is_file():
            return folder / "dataset.json"
    return None


def load_dataset_protocol(dataset_json: str | Path) -> Protocol:
    """Protocol from a dataset.json file (v1 or v2) or a folder holding one."""
    path = Path(dataset_json)
    if path.is_dir():
        return dataset_protocol(load_dataset_json(path))
    if path.name != "dataset.json":
        raise UnetrPPError(f"{path}: expected a file named dataset.json (or the folder holding it)")
    return dataset_protocol(load_dataset_json(path.parent))


def select_labels(protocol: Protocol | None, labels: Sequence[int]) -> Protocol:
    """Restrict to label ids `labels` (`-l`), named after the protocol's labels where it knows them."""
    if not labels:
        raise UnetrPPError("-l needs at least one label id")
    if protocol is None:
        return Protocol("labels " + ", ".join(map(str, labels)), tuple(as_targets(list(labels))), None)
    known = {t.ids[0]: t for t in _LABEL_NAMES.get(protocol.name, protocol.targets) if len(t.ids) == 1}
    bad = [label for label in labels if protocol.allowed is not None and label not in protocol.allowed]
    if bad:
        raise UnetrPPError(
            f"label(s) {bad} are not part of protocol {protocol.name!r} (allowed: {sorted(protocol.allowed)})"
        )
    targets = [known.get(label, label_target(label)) for label in labels]
    name = f"{protocol.name} (labels {', '.join(map(str, labels))})"
    return Protocol(name, tuple(as_targets(targets)), protocol.allowed)


def resolve_protocol(
    protocol: str | None, labels: Sequence[int] | None, dataset_json: str | Path | None, ref_dir: Path
) -> Protocol | None:
    """The protocol to evaluate with; None means "every label value present in the files"."""
    if protocol not in (None, ALL_LABELS) and protocol not in PROTOCOLS:
        raise UnetrPPError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOL_CHOICES)})")
    if protocol in PROTOCOLS:
        if dataset_json is not None:
            raise UnetrPPError("give either --protocol or --dataset_json, not both")
        chosen: Protocol | None = PROTOCOLS[protocol]
    else:
        found = dataset_json if dataset_json is not None else find_dataset_json(ref_dir)
        chosen = load_dataset_protocol(found) if found is not None else None
    return select_labels(chosen, labels) if labels else chosen


def restrict_protocol(protocol: Protocol | None, label_map: LabelMap) -> Protocol:
    """The targets a mapped prediction can be scored on: those holding a mapped reference id.

    With no protocol these are the map's reference labels. A protocol none of whose targets holds a
    mapped id is an error.
    """
    refs = set(label_map.reference_labels)
    suffix = f"predicted labels mapped {label_map.text}"
    if protocol is None:
        return Protocol(f"labels present, {suffix}", tuple(label_target(r) for r in sorted(refs)), None)
    targets = tuple(t for t in protocol.targets if refs & set(t.ids))
    if not targets:
        raise UnetrPPError(f"--label_map {label_map.text!r}: no target of protocol {protocol.name!r} holds reference "
                           f"label(s) {sorted(refs)} (targets: "
                           f"{', '.join(f'{t.name} {list(t.ids)}' for t in protocol.targets)})")
    if protocol.allowed is not None and not refs <= protocol.allowed:
        raise UnetrPPError(f"--label_map {label_map.text!r}: reference label(s) {sorted(refs - protocol.allowed)} "
                           f"are not part of protocol {protocol.name!r} (allowed: {sorted(protocol.allowed)})")
    return Protocol(f"{protocol.name}, {suffix}", targets, protocol.allowed)
