"""Read and write 3D images with SimpleITK, keeping spacing, origin and direction.

Arrays are in numpy axis order (z, y, x); `Geometry.spacing` is in that order too, while
`itk_origin`/`itk_direction` keep SimpleITK's (x, y, z) convention so a write restores the header.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path

SUPPORTED_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha")


@dataclass(frozen=True)
class Geometry:
    """Physical placement of an image: spacing (z, y, x) in mm, ITK origin and direction."""

    spacing: tuple[float, ...]
    itk_origin: tuple[float, ...]
    itk_direction: tuple[float, ...]

    @property
    def itk_spacing(self) -> tuple[float, ...]:
        """Spacing in SimpleITK (x, y, z) order."""
        return tuple(reversed(self.spacing))

    def to_json(self) -> dict:
        """JSON-ready dict (lists of floats)."""
        return {
            "spacing": [float(v) for v in self.spacing],
            "itk_origin": [float(v) for v in self.itk_origin],
            "itk_direction": [float(v) for v in self.itk_direction],
        }

    @classmethod
    def from_json(cls, obj: dict) -> "Geometry":
        """Inverse of `to_json`."""
        return cls(tuple(obj["spacing"]), tuple(obj["itk_origin"]), tuple(obj["itk_direction"]))

    def mismatch(self, other: "Geometry", tol: float = 1e-4) -> list[str]:
        """Names of the geometry fields that differ from `other` beyond a relative/absolute `tol`."""
        out = []
        for field in ("spacing", "itk_origin", "itk_direction"):
            a, b = np.asarray(getattr(self, field)), np.asarray(getattr(other, field))
            if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=tol):
                out.append(field)
        return out


def image_ending(path: str | os.PathLike) -> str | None:
    """The supported ending of `path` (e.g. '.nii.gz'), or None."""
    name = Path(path).name.lower()
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return ending
    return None


def _nifti_expected_size(header: bytes) -> int | None:
    """Bytes up to the end of the voxel data according to a NIfTI-1/2 header (None if not NIfTI)."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    n_dims = max(0, min(int(dims[0]), 7))
    n_voxels = int(np.prod([max(int(d), 1) for d in dims[1 : 1 + n_dims]]))
    return vox_offset + n_voxels * max(int(bitpix), 8) // 8


def _gzip_stream_length(path: Path) -> int | None:
    """Uncompressed length of a (multi-member) gzip file, or None if it is cut short or corrupt."""
    total, in_member = 0, False
    decompressor = zlib.decompressobj(wbits=47)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                while chunk:
                    total += len(decompressor.decompress(chunk))
                    in_member = True
                    if decompressor.eof:
                        chunk, in_member = decompressor.unused_data, False
                        decompressor = zlib.decompressobj(wbits=47)
                    else:
                        chunk = b""
    except zlib.error:
        return None
    return None if in_member else total


def _check_nifti_complete(path: Path) -> None:
    """SimpleITK silently zero-fills truncated NIfTI files; detect them from the header and file size."""
    compressed = path.name.lower().endswith(".gz")
    try:
        if compressed:
            with gzip.open(path, "rb") as fh:
                header = fh.read(540)
        else:
            with open(path, "rb") as fh:
                header = fh.read(540)
    except (OSError, EOFError) as err:
        raise UnetrPPError(f"{path}: cannot read image (corrupt or truncated?): {err}") from None
    expected = _nifti_expected_size(header)
    if expected is None:
        raise UnetrPPError(f"{path}: not a NIfTI file (bad header)")
    if not compressed:
        actual = path.stat().st_size
    else:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", fh.read(4))[0]
        if isize == expected % (1 << 32):
            return
        actual = _gzip_stream_length(path)
        if actual is None:
            raise UnetrPPError(f"{path}: truncated file (compressed stream ends early)")
    if actual < expected:
        raise UnetrPPError(f"{path}: truncated file ({actual} of {expected} bytes of header + voxel data)")


def _read_sitk(path: Path) -> sitk.Image:
    if not path.is_file():
        raise UnetrPPError(f"{path}: file not found")
    if image_ending(path) is None:
        raise UnetrPPError(f"{path}: unsupported file type (supported: {', '.join(SUPPORTED_ENDINGS)})")
    if image_ending(path) in (".nii.gz", ".nii"):
        _check_nifti_complete(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:200]
        raise UnetrPPError(f"{path}: cannot read image (corrupt or truncated?): {detail}") from None


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read one image -> (array (z, y, x) in its stored dtype, Geometry). Multi-component -> (..., comp)."""
    path = Path(path)
    image = _read_sitk(path)
    try:
        array = sitk.GetArrayFromImage(image)
    except RuntimeError as err:
        raise UnetrPPError(f"{path}: cannot decode voxel data: {' '.join(str(err).split())[:200]}") from None
    geometry = Geometry(
        spacing=tuple(float(s) for s in reversed(image.GetSpacing())),
        itk_origin=tuple(float(v) for v in image.GetOrigin()),
        itk_direction=tuple(float(v) for v in image.GetDirection()),
    )
    return array, geometry


def read_image_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """Array shape (z, y, x) from the image header alone; None when the header cannot be read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return tuple(int(v) for v in reversed(reader.GetSize()))


def read_case_channels(paths: Sequence[str | os.PathLike]) -> tuple[list[np.ndarray], Geometry]:
    """Read a case's channels -> ([array (z, y, x) per channel, stored dtype], geometry of the first channel).

    Raises UnetrPPError naming the file when a channel is not 3D or its shape/geometry differs.
    """
    arrays, geometries = [], []
    for p in paths:
        array, geometry = read_image(p)
        if array.ndim != 3:
            raise UnetrPPError(f"{p}: image is {array.ndim}D, expected 3D")
        if arrays and array.shape != arrays[0].shape:
            raise UnetrPPError(f"{p}: shape {array.shape} differs from {paths[0]} {arrays[0].shape}")
        bad = geometry.mismatch(geometries[0]) if geometries else []
        if bad:
            raise UnetrPPError(f"{p}: {', '.join(bad)} differ from {paths[0]}")
        arrays.append(array)
        geometries.append(geometry)
    return arrays, geometries[0]


def read_case_images(paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, Geometry]:
    """Read a case's channels -> (float32 array (C, z, y, x), geometry of the first channel).

    Raises UnetrPPError naming the file when a channel is not 3D or its shape/geometry differs.
    """
    arrays, geometry = read_case_channels(paths)
    out = np.empty((len(arrays),) + arrays[0].shape, dtype=np.float32)
    for c in range(len(arrays)):
        out[c] = arrays[c]
        arrays[c] = None
    return out, geometry


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write a (z, y, x) array with `geometry` atomically; the format follows the file ending."""
    path = Path(path)
    if image_ending(path) is None:
        raise UnetrPPError(f"{path}: unsupported file type (supported: {', '.join(SUPPORTED_ENDINGS)})")
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.itk_spacing)
    image.SetOrigin(geometry.itk_origin)
    image.SetDirection(geometry.itk_direction)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
