"""Tiny fake raw releases (Synapse/BTCV, ACDC, BraTS, MSD) with realistic geometry headers for converter tests."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from unetr_pp.dataset.converters import convert_task
from unetr_pp.utilities.errors import UnetrPPError

SHAPE = (6, 8, 8)  # (z, y, x)
SPACING_XYZ = (0.79, 0.79, 3.0)
ORIGIN_XYZ = (-172.3, -168.9, -412.5)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # LPS -> RAS flip, as in many CT exports


def write(array: np.ndarray, path: Path, spacing=SPACING_XYZ, origin=ORIGIN_XYZ, direction=DIRECTION) -> Path:
    """Write a 3D (z, y, x) or 4D (t, z, y, x) array as NIfTI with the given ITK geometry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array, isVector=False)
    if array.ndim == 4:
        image.SetSpacing(tuple(spacing) + (1.0,))
        image.SetOrigin(tuple(origin) + (0.0,))
        d = np.eye(4)
        d[:3, :3] = np.asarray(direction).reshape(3, 3)
        image.SetDirection(tuple(d.ravel()))
    else:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))
    return path


def volume(seed: int, dtype=np.int16) -> np.ndarray:
    """A reproducible (z, y, x) intensity volume."""
    return np.random.default_rng(seed).integers(-1000, 1000, SHAPE).astype(dtype)


def label_map(seed: int, values: list[int]) -> np.ndarray:
    """A reproducible uint8 (z, y, x) label map using every value of `values`."""
    rng = np.random.default_rng(seed)
    out = rng.choice(np.asarray(values, dtype=np.uint8), SHAPE)
    out.flat[: len(values)] = values
    return out


def make_synapse(root: Path, numbers=(1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38, 5, 6), tests=(61, 62)) -> Path:
    """`RawData/Training/img|label`, `RawData/Testing/img` like the Synapse download (`root` is its parent)."""
    raw = root / "RawData"
    for n in numbers:
        write(volume(n), raw / "Training" / "img" / f"img{n:04d}.nii.gz")
        write(label_map(n, list(range(14))), raw / "Training" / "label" / f"label{n:04d}.nii.gz")
    for n in tests:
        write(volume(n), raw / "Testing" / "img" / f"img{n:04d}.nii.gz")
    return root


def make_acdc(root: Path) -> Path:
    """`database/training/patient00X/…` with ED/ES frames, `_gt`, `_4d` and Info.cfg; one testing patient."""
    db = root / "database"
    for split, patient, frames in (("training", 1, (1, 12)), ("training", 2, (1, 10)), ("testing", 101, (1, 14))):
        folder = db / split / f"patient{patient:03d}"
        for frame in frames:
            write(volume(patient * 100 + frame), folder / f"patient{patient:03d}_frame{frame:02d}.nii.gz",
                  spacing=(1.37, 1.37, 10.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
            write(label_map(frame, [0, 1, 2, 3]), folder / f"patient{patient:03d}_frame{frame:02d}_gt.nii.gz",
                  spacing=(1.37, 1.37, 10.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
        write(np.stack([volume(patient)] * 3), folder / f"patient{patient:03d}_4d.nii.gz")
        (folder / "Info.cfg").write_text(f"ED: {frames[0]}\nES: {frames[1]}\nGroup: NOR\nHeight: 180.0\n")
    return root


BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")


def make_brats(root: Path, training=("BraTS20_Training_001", "BraTS20_Training_002"),
               testing=("BraTS20_Validation_001",)) -> Path:
    """One folder per case with `_flair/_t1/_t1ce/_t2` (values 1000·k + noise) and `_seg` (0, 1, 2, 4).

    Odd cases are uncompressed `.nii` like the BraTS 2020 release, even ones `.nii.gz`.
    """
    for i, case in enumerate(training + testing):
        ending = ".nii" if i % 2 else ".nii.gz"
        for k, modality in enumerate(BRATS_MODALITIES):
            write(volume(i, np.int16) // 10 + 1000 * (k + 1), root / case / f"{case}_{modality}{ending}")
        if case in training:
            write(label_map(i, [0, 1, 2, 4]).astype(np.float32), root / case / f"{case}_seg{ending}")
    return root


def make_msd(root: Path, name="Task06_Lung", channels=1, test_labels=False) -> Path:
    """An MSD task: dataset.json, 3D (channels=1) or 4D images, labels, one test image (+ its label in
    labelsTs when `test_labels`, like the UNETR++ seed's Task02_Synapse), a hidden `._` file."""
    task = root / name
    training = []
    for n in (1, 3):
        image = np.stack([volume(n * 10 + c) for c in range(channels)]) if channels > 1 else volume(n)
        write(image, task / "imagesTr" / f"case_{n:03d}.nii.gz")
        write(label_map(n, [0, 1]), task / "labelsTr" / f"case_{n:03d}.nii.gz")
        training.append({"image": f"./imagesTr/case_{n:03d}.nii.gz", "label": f"./labelsTr/case_{n:03d}.nii.gz"})
    write(np.stack([volume(70 + c) for c in range(channels)]) if channels > 1 else volume(7),
          task / "imagesTs" / "case_007.nii.gz")
    if test_labels:
        write(label_map(7, [0, 1]), task / "labelsTs" / "case_007.nii.gz")
    (task / "imagesTr" / "._case_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    modality = {str(c): name for c, name in enumerate(["CT"] if channels == 1 else ["FLAIR", "T1w", "t1gd", "T2w"])}
    (task / "dataset.json").write_text(json.dumps({
        "name": name.split("_", 1)[1], "description": "fake", "reference": "fake ref", "licence": "CC-BY-SA 4.0",
        "release": "1.0", "tensorImageSize": "4D" if channels > 1 else "3D",
        "modality": modality, "labels": {"0": "background", "1": "cancer"},
        "numTraining": 2, "numTest": 1, "training": training, "test": ["./imagesTs/case_007.nii.gz"],
    }))
    return task


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha1} of every file under `root` (to prove the raw input is untouched)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    """(array, image) of a written file."""
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def conversion_error(source: str, raw: Path, out: Path, **kwargs) -> str:
    """The message of the UnetrPPError a conversion must raise; nothing may appear in `out`."""
    with pytest.raises(UnetrPPError) as info:
        convert_task(source, raw, output_dir=out, num_processes=1, **kwargs)
    assert not out.exists() or not any(out.iterdir()), f"{out} is not empty after a failed conversion"
    return str(info.value)
