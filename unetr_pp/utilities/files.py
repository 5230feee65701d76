"""Atomic writes (temp file + rename) and JSON helpers with clear errors."""
from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from unetr_pp.utilities.errors import UnetrPPError


def umask_mode(mode: int) -> int:
    """`mode` as open()/mkdir() would create it under the current umask (mkstemp/mkdtemp use 0o600/0o700)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    `suffix` defaults to the full ending of `path` (e.g. `.nii.gz`) so writers that pick a format
    from the file name still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, umask_mode(0o666))
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def publish_folder(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Rename the finished folder `staging` to `final` (same file system); an existing `final` is moved aside
    first and deleted only after the rename, so `final` is at every moment either the old or the new folder."""
    staging, final = Path(staging), Path(final)
    if not final.exists():
        os.replace(staging, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.replaced-", dir=final.parent))
    os.replace(final, old / final.name)
    try:
        os.replace(staging, final)
    except BaseException:
        os.replace(old / final.name, final)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def save_json(obj: Any, path: str | os.PathLike, indent: int = 2) -> None:
    """Write `obj` as JSON atomically (numpy scalars/arrays and Paths are converted)."""
    text = json.dumps(obj, indent=indent, default=_json_default, allow_nan=True)
    with atomic_path(path, suffix=".tmp") as tmp:
        tmp.write_text(text + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises UnetrPPError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UnetrPPError(f"{path}: file not found") from None
    except OSError as err:
        raise UnetrPPError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UnetrPPError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None


def save_npy(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a .npy file atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def save_npy_chunks(path: str | os.PathLike, shape: tuple[int, ...], dtype, chunks: Iterable[np.ndarray]) -> None:
    """Write a C-order .npy file of `shape` atomically from `chunks` (consecutive pieces in C order, cast to
    `dtype`), so the whole array never has to be in memory."""
    dtype = np.dtype(dtype)
    written, expected = 0, int(np.prod(shape, dtype=np.int64))
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        np.lib.format.write_array_header_1_0(f, header)
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            f.write(memoryview(chunk).cast("B"))
            written += chunk.size
        if written != expected:
            raise ValueError(f"{path}: {written} values written for shape {shape}")


def read_npy_owned(array: np.ndarray, index: int | None = None) -> np.ndarray:
    """An in-memory copy of `array` (or of `array[index]`).

    A whole array memory-mapped from a .npy file (np.load(mmap_mode=...)) is read with plain file reads, so
    none of its pages stay mapped (resident) in this process.
    """
    part = array if index is None else array[index]
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous):
        return np.array(part)
    offset = array.offset + (0 if index is None else index * part.size * array.itemsize)
    out = np.fromfile(array.filename, dtype=array.dtype, count=part.size, offset=offset)
    return out.reshape(part.shape)


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and make sure files can be written into it (else UnetrPPError)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UnetrPPError(f"{path}: output folder cannot be written ({err.strerror})") from None
    return path
