"""File jobs: read one raw image, split channels / check and map labels, write into the task (parallel)."""
from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from unetr_pp.io.images import Geometry, read_image, write_image
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.parallel import parallel_map


@dataclass(frozen=True)
class FileJob:
    """One raw file read once and written as one or more files of a task.

    `channels`: write volume `channels[i]` of a 4D (or multi-component) image to `targets[i]`; None: the
    image is 3D and `targets` has one entry. `label_values`: the file is a label map whose voxels must be
    integers from this set; `label_map` then renames them (raw -> output). `orientation` (e.g. "RAS"):
    permute/flip the voxel axes to that ITK orientation, keeping every voxel's physical position. A
    `source` folder is read as one DICOM series. An unchanged `.nii.gz` is copied byte for byte after
    the read has proven it complete.
    """

    source: Path
    targets: tuple[str, ...]
    channels: tuple[int, ...] | None = None
    label_values: frozenset[int] | None = None
    label_map: tuple[tuple[int, int], ...] | None = None
    orientation: str | None = None


def _to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.itk_spacing)
    image.SetOrigin(geometry.itk_origin)
    image.SetDirection(geometry.itk_direction)
    return image


def _from_sitk(image: sitk.Image) -> tuple[np.ndarray, Geometry]:
    geometry = Geometry(tuple(float(s) for s in reversed(image.GetSpacing())),
                        tuple(float(v) for v in image.GetOrigin()), tuple(float(v) for v in image.GetDirection()))
    return sitk.GetArrayFromImage(image), geometry


def reorient(array: np.ndarray, geometry: Geometry, orientation: str) -> tuple[np.ndarray, Geometry]:
    """(z, y, x) array -> the same voxels with axes permuted/flipped to the ITK `orientation` (e.g. "RAS")."""
    return _from_sitk(sitk.DICOMOrient(_to_sitk(array, geometry), orientation))


def dicom_series_files(folder: Path) -> list[str]:
    """The files of the single DICOM series in `folder`, in slice order (UnetrPPError if not exactly one)."""
    reader = sitk.ImageSeriesReader
    ids = reader.GetGDCMSeriesIDs(str(folder))
    if len(ids) != 1:
        raise UnetrPPError(f"{folder}: holds {len(ids)} DICOM series, expected exactly one")
    return list(reader.GetGDCMSeriesFileNames(str(folder), ids[0]))


def read_source(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read an image file, or a folder holding one DICOM series -> (array (z, y, x), Geometry)."""
    if not path.is_dir():
        return read_image(path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(dicom_series_files(path))
    try:
        return _from_sitk(reader.Execute())
    except RuntimeError as err:
        raise UnetrPPError(f"{path}: cannot read the DICOM series: {' '.join(str(err).split())[:200]}") from None


def _select_channel(array: np.ndarray, geometry: Geometry, channel: int) -> tuple[np.ndarray, Geometry]:
    """4D (t, z, y, x) or vector (z, y, x, c) array -> the 3D volume of `channel` and its 3D geometry."""
    if len(geometry.spacing) == 4:
        direction = np.asarray(geometry.itk_direction).reshape(4, 4)[:3, :3]
        geometry = Geometry(geometry.spacing[1:], geometry.itk_origin[:3], tuple(direction.ravel().tolist()))
        return np.ascontiguousarray(array[channel]), geometry
    return np.ascontiguousarray(array[..., channel]), geometry


def _check_labels(array: np.ndarray, job: FileJob) -> str | None:
    """A message when the label map holds non-integer values or values outside `job.label_values`."""
    values = np.unique(array)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        return f"{job.source}: label map holds non-integer values {values[values != np.round(values)][:5].tolist()}"
    unexpected = sorted(int(v) for v in values if int(v) not in job.label_values)
    if unexpected:
        return (f"{job.source}: unexpected label values {unexpected} "
                f"(allowed: {sorted(job.label_values)})")
    return None


def _map_labels(array: np.ndarray, mapping: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Rename label values (every value present must be a key of `mapping`) -> uint8 (z, y, x)."""
    out = np.zeros(array.shape, dtype=np.uint8)
    for source, target in mapping:
        out[array == source] = target
    return out


def _write_3d(job: FileJob, array: np.ndarray, geometry: Geometry, destination: Path) -> str | None:
    """Check/map a 3D volume and write it (byte copy when the source needs no change)."""
    if array.ndim != 3:
        return f"{job.source}: image is {array.ndim}D, expected 3D"
    if job.label_values is not None:
        problem = _check_labels(array, job)
        if problem:
            return problem
        if job.label_map is not None:
            array = _map_labels(array, job.label_map)
    if job.orientation is not None:
        array, geometry = reorient(array, geometry, job.orientation)
    unchanged = job.channels is None and job.label_map is None and job.orientation is None
    if unchanged and job.source.is_file() and job.source.name.lower().endswith(".nii.gz"):
        shutil.copyfile(job.source, destination)
    else:
        write_image(array, geometry, destination)
    return None


def execute(job: FileJob, root: Path) -> str | None:
    """Run one job into the task folder `root`; returns a problem message instead of raising."""
    destination = root / job.targets[0]
    try:
        array, geometry = read_source(job.source)
        if job.channels is None:
            return _write_3d(job, array, geometry, destination)
        for channel, target in zip(job.channels, job.targets):
            destination = root / target
            volume, volume_geometry = _select_channel(array, geometry, channel)
            problem = _write_3d(job, volume, volume_geometry, destination)
            if problem:
                return problem
    except UnetrPPError as err:
        return str(err)
    except OSError as err:
        return f"{destination}: cannot write ({err.strerror or err})"
    return None


def run_jobs(jobs: list[FileJob], root: Path, num_processes: int, desc: str) -> list[str]:
    """Run every job (in `num_processes` worker processes when > 1) with a progress bar -> problems."""
    problems = parallel_map(functools.partial(execute, root=root), jobs, num_processes, desc, "file")
    return sorted(p for p in problems if p)
