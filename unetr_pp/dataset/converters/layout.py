"""Raw-layout checks shared by the converters: file listing, header probing, one error for all problems.

Validation only reads image headers (cheap); the voxel data is read once, when the files are written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from unetr_pp.utilities.errors import UnetrPPError

NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_GRID_TOL = 1e-4
PER_KIND = 5
_VARIABLE_RE = re.compile(r"\[[^\]]*\]|'[^']*'|\S*[/\\.]\S*|\d+")


def problem_kind(problem: str) -> str:
    """The message of a problem without its file name, paths, numbers and lists (groups alike problems)."""
    _, sep, message = problem.partition(": ")
    return _VARIABLE_RE.sub("#", message if sep else problem)


def summarize_problems(problems: Sequence[str], per_kind: int = PER_KIND) -> list[str]:
    """The first `per_kind` problems of each kind (in order), then one line per kind counting the rest."""
    shown: dict[str, int] = {}
    out: list[str] = []
    for problem in problems:
        kind = problem_kind(problem)
        shown[kind] = shown.get(kind, 0) + 1
        if shown[kind] <= per_kind:
            out.append(problem)
    for kind, count in shown.items():
        if count > per_kind:
            out.append(f"... and {count - per_kind} more problem(s) like: {kind}")
    return out


class LayoutError(UnetrPPError):
    """A raw folder that does not have a converter's layout: every problem, then the expected layout."""

    def __init__(self, message: str, problems: Sequence[str], expected: str) -> None:
        super().__init__(message, summarize_problems(problems))
        self.expected = expected

    def __str__(self) -> str:
        return super().__str__() + "\nexpected layout:\n" + self.expected


def check_problems(raw: Path, source: str, problems: list[str], expected: str) -> None:
    """Raise a LayoutError listing `problems` (if any) with the `expected` layout as a hint."""
    if problems:
        raise LayoutError(
            f"{raw}: not a valid '{source}' raw folder: {len(problems)} problem(s) found", problems, expected
        )


def is_nifti(path: Path) -> bool:
    """True for a visible `.nii` / `.nii.gz` file (hidden `._*` files of macOS archives are skipped)."""
    return path.is_file() and not path.name.startswith(".") and NIFTI_RE.search(path.name) is not None


def nifti_stem(path: Path | str) -> str:
    """`img0001.nii.gz` -> `img0001`."""
    return NIFTI_RE.sub("", Path(path).name)


def list_nifti(folder: Path) -> list[Path]:
    """Visible NIfTI files directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if is_nifti(p)) if folder.is_dir() else []


def list_subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders of `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def descend(raw: Path, wrappers: Sequence[str], marker: str) -> Path:
    """`raw`, or `raw/<wrapper>` when only that one contains `marker` (e.g. an archive's `RawData/`)."""
    if (raw / marker).exists():
        return raw
    for wrapper in wrappers:
        if (raw / wrapper / marker).exists():
            return raw / wrapper
    return raw


def require_folder(raw: Path, relative: str, problems: list[str]) -> Path:
    """`raw/relative`, recording a problem when it is not a folder."""
    folder = raw / relative
    if not folder.is_dir():
        problems.append(f"{relative}/: folder not found in {raw}")
    return folder


@dataclass(frozen=True)
class Header:
    """What validation needs from an image header; spatial fields in array (z, y, x) order."""

    path: Path
    shape: tuple[int, ...]
    channels: int
    four_d: bool
    spacing: tuple[float, ...]
    itk_origin: tuple[float, ...]
    itk_direction: tuple[float, ...]


def read_header(path: Path, problems: list[str]) -> Header | None:
    """Probe an image header; a missing/unreadable file or a non-3D/4D image becomes a problem."""
    if not path.is_file():
        problems.append(f"{path}: file not found")
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        problems.append(f"{path}: unreadable image header (corrupt or not an image)")
        return None
    size, dim = reader.GetSize(), reader.GetDimension()
    if dim not in (3, 4):
        problems.append(f"{path}: image is {dim}D, expected 3D (or 4D with one volume per channel)")
        return None
    components = reader.GetNumberOfComponents()
    if dim == 4 and components > 1:
        problems.append(f"{path}: 4D image with {components} components per voxel is not supported")
        return None
    direction = np.asarray(reader.GetDirection()).reshape(dim, dim)[:3, :3]
    return Header(
        path=path,
        shape=tuple(int(s) for s in reversed(size[:3])),
        channels=int(size[3]) if dim == 4 else components,
        four_d=dim == 4 or components > 1,
        spacing=tuple(float(s) for s in reversed(reader.GetSpacing()[:3])),
        itk_origin=tuple(float(v) for v in reader.GetOrigin()[:3]),
        itk_direction=tuple(float(v) for v in direction.ravel()),
    )


def check_same_grid(header: Header, reference: Header, problems: list[str], warnings: list[str]) -> None:
    """Shape or spacing differing from `reference` is a problem; origin/direction only a warning."""
    if header.shape != reference.shape:
        problems.append(f"{header.path}: shape {list(header.shape)} differs from {reference.path.name} "
                        f"{list(reference.shape)}")
        return
    for field, sink in (("spacing", problems), ("itk_origin", warnings), ("itk_direction", warnings)):
        a, b = np.asarray(getattr(header, field)), np.asarray(getattr(reference, field))
        if not np.allclose(a, b, rtol=_GRID_TOL, atol=_GRID_TOL):
            sink.append(f"{header.path}: {field.replace('itk_', '')} {a.round(4).tolist()} differs from "
                        f"{reference.path.name} {b.round(4).tolist()}")


def read_3d_header(path: Path, problems: list[str]) -> Header | None:
    """`read_header` that also records a problem for a 4D / multi-channel image."""
    header = read_header(path, problems)
    if header is not None and header.four_d:
        problems.append(f"{path}: has {header.channels} volumes/channels, expected one 3D image")
        return None
    return header


def check_pair(image: Path, label: Path, problems: list[str], warnings: list[str]) -> None:
    """Both files are readable 3D images on the same grid (shape, spacing; origin/direction warn)."""
    image_header, label_header = read_3d_header(image, problems), read_3d_header(label, problems)
    if image_header and label_header:
        check_same_grid(label_header, image_header, problems, warnings)
