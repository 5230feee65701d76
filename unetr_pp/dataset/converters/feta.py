"""FeTA 2021 (fetal brain MRI, BIDS folders) -> a task folder; labels are the 7 tissues."""
from __future__ import annotations

import re
from pathlib import Path

from unetr_pp.dataset.converters.cases import Case, Release, Scan, apply_split_list, build_plan
from unetr_pp.dataset.converters.layout import list_nifti, list_subfolders
from unetr_pp.dataset.converters.task_writer import TaskPlan

FETA_LABELS = {
    0: "background", 1: "external cerebrospinal fluid", 2: "grey matter", 3: "white matter", 4: "ventricles",
    5: "cerebellum", 6: "deep grey matter", 7: "brainstem",
}
FETA_LAYOUT = """\
  RAW/ = feta_2.1/                      the unpacked FeTA 2021 release (BIDS)
    sub-001/anat/sub-001_rec-mial_T2w.nii.gz    super-resolved T2w volume (rec-mial / rec-irtk / rec-nmic)
    sub-001/anat/sub-001_rec-mial_dseg.nii.gz   labels 1-7
    participants.tsv, dataset_description.json, README ...   (not read)"""

_SUBJECT_RE = re.compile(r"^sub-(\d+)$")
_LIST_NAME_RE = re.compile(r"^FeTA_(\d+)$")


def _anat_files(folder: Path, subject: str, scan: Scan) -> tuple[Path | None, Path | None]:
    """(T2w, dseg) of `sub-XXX/anat/`; other NIfTI files and missing ones are problems."""
    pattern = re.compile(rf"^{re.escape(subject)}_rec-[A-Za-z0-9]+_(T2w|dseg)\.nii(\.gz)?$")
    found: dict[str, Path] = {}
    anat = folder / "anat"
    for path in list_nifti(anat):
        match = pattern.match(path.name)
        if match is None or match.group(1) in found:
            scan.problems.append(f"{path}: unexpected file (expected one {subject}_rec-<rec>_T2w.nii.gz and "
                                 f"one {subject}_rec-<rec>_dseg.nii.gz)")
        else:
            found[match.group(1)] = path
    if "T2w" not in found:
        scan.problems.append(f"{anat}: no {subject}_rec-<rec>_T2w.nii.gz image")
    if "dseg" not in found:
        scan.problems.append(f"{anat}: no {subject}_rec-<rec>_dseg.nii.gz label")
    return found.get("T2w"), found.get("dseg")


def list_name_to_subject(name: str) -> str:
    """MASILab's `FeTA_NNN` (0-based) -> `sub-(NNN+1)`; a `sub-XXX` name is kept."""
    match = _LIST_NAME_RE.match(name)
    return f"sub-{int(match.group(1)) + 1:03d}" if match else name


def plan_feta(raw: Path, task_name: str, split_json: Path | None = None) -> TaskPlan:
    """FeTA: every `sub-XXX` with a T2w image and a dseg label becomes a training case `sub-XXX`."""
    if not any(_SUBJECT_RE.match(p.name) for p in list_subfolders(raw)):
        raw = next((p for p in list_subfolders(raw) if p.name.startswith("feta")), raw)
    scan = Scan()
    for folder in list_subfolders(raw):
        if not _SUBJECT_RE.match(folder.name):
            scan.warnings.append(f"{folder}: not a sub-XXX folder, ignored")
            continue
        image, label = _anat_files(folder, folder.name, scan)
        if image is not None and label is not None:
            scan.add(Case(folder.name, image, label))
    for path in list_nifti(raw):
        scan.problems.append(f"{path}: unexpected file (images belong in sub-XXX/anat/)")
    if split_json is not None:
        apply_split_list(scan, split_json, list_name_to_subject)
    release = Release("feta", "FeTA2021", "FeTA 2021 fetal brain T2w MRI, 7 tissues", {0: "T2w"}, FETA_LABELS,
                      "feta", FETA_LAYOUT)
    return build_plan(release, raw, task_name, scan, {"split_list": str(split_json) if split_json else None})
