"""Tiny fake releases laid out exactly as AMOS 2022, FLARE 2021, FeTA 2021, KiTS 2019, LiTS, TCIA Pancreas-CT
(DICOM series) and MONAI's BTCV json list distribute them (docs/converters.md names the source of each fact)."""
from __future__ import annotations

import json
import locale
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from convert_fakes import label_map, volume, write

KITS_SHAPE = (5, 6, 7)  # nibabel (slices, rows, cols), as the KiTS starter code loads it
KITS_AFFINE = np.array([[0.0, 0.0, -0.78, 12.0], [0.0, -0.78, 0.0, -40.0], [-3.0, 0.0, 0.0, 150.0],
                        [0.0, 0.0, 0.0, 1.0]])


def make_amos(root: Path, labels_tr=(1, 4, 507), labels_va=(8, 510), tests=(2, 511)) -> Path:
    """`amos22/imagesTr|labelsTr|imagesVa|labelsVa|imagesTs` + dataset.json; ids > 500 are MRI."""
    raw = root / "amos22"
    for split, numbers in (("Tr", labels_tr), ("Va", labels_va)):
        for n in numbers:
            write(volume(n), raw / f"images{split}" / f"amos_{n:04d}.nii.gz")
            write(label_map(n, list(range(16))), raw / f"labels{split}" / f"amos_{n:04d}.nii.gz")
    for n in tests:
        write(volume(n), raw / "imagesTs" / f"amos_{n:04d}.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({"name": "AMOS", "numTraining": len(labels_tr)}))
    return raw


def make_flare(root: Path, numbers=(0, 1, 2), validation=(1,)) -> Path:
    """`TrainingImg/train_NNN_0000.nii.gz`, `TrainingMask/train_NNN.nii.gz`, `ValidationImg/validation_NNN_0000`."""
    for n in numbers:
        write(volume(n), root / "TrainingImg" / f"train_{n:03d}_0000.nii.gz")
        write(label_map(n, [0, 1, 2, 3, 4]), root / "TrainingMask" / f"train_{n:03d}.nii.gz")
    for n in validation:
        write(volume(100 + n), root / "ValidationImg" / f"validation_{n:03d}_0000.nii.gz")
    return root


def make_feta(root: Path, subjects=((1, "mial"), (2, "irtk"), (3, "mial"))) -> Path:
    """`feta_2.1/sub-XXX/anat/sub-XXX_rec-<rec>_T2w.nii.gz` + `_dseg.nii.gz` and the BIDS top-level files."""
    raw = root / "feta_2.1"
    for n, rec in subjects:
        anat = raw / f"sub-{n:03d}" / "anat"
        write(volume(n), anat / f"sub-{n:03d}_rec-{rec}_T2w.nii.gz", spacing=(0.5, 0.5, 0.5),
              origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
        write(label_map(n, list(range(8))), anat / f"sub-{n:03d}_rec-{rec}_dseg.nii.gz", spacing=(0.5, 0.5, 0.5),
              origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
    (raw / "participants.tsv").write_text("participant_id\tPathology\tGestational age\nsub-001\tNeurotypical\t27.9\n")
    (raw / "dataset_description.json").write_text(json.dumps({"Name": "FeTA", "BIDSVersion": "1.4.0"}))
    return root


def kits_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(imaging float32, segmentation uint8) of fake case n, nibabel order (slices, rows, cols)."""
    rng = np.random.default_rng(n)
    image = rng.integers(-1000, 1000, KITS_SHAPE).astype(np.float32)
    seg = rng.choice(np.array([0, 1, 2], np.uint8), KITS_SHAPE)
    return image, seg


def make_kits(root: Path, labelled=(0, 1), unlabelled=(210,)) -> Path:
    """`kits19/data/case_XXXXX/imaging.nii.gz` (+ `segmentation.nii.gz`) written with nibabel like KiTS:
    the array is (slices, rows, cols) and the affine maps the first voxel axis to the S-I axis."""
    data = root / "kits19" / "data"
    for n in labelled + unlabelled:
        folder = data / f"case_{n:05d}"
        folder.mkdir(parents=True)
        image, seg = kits_arrays(n)
        nib.save(nib.Nifti1Image(image, KITS_AFFINE), folder / "imaging.nii.gz")
        if n in labelled:
            nib.save(nib.Nifti1Image(seg, KITS_AFFINE), folder / "segmentation.nii.gz")
    (data / "kits.json").write_text("[]")
    return root / "kits19"


def make_lits(root: Path) -> Path:
    """`Training Batch 1/volume-0.nii …`, `Training Batch 2/volume-28.nii …`, a test folder (uncompressed)."""
    for batch, numbers in (("Training Batch 1", (0, 1)), ("Training Batch 2", (28,))):
        for n in numbers:
            write(volume(n), root / batch / f"volume-{n}.nii")
            write(label_map(n, [0, 1, 2]), root / batch / f"segmentation-{n}.nii")
    write(volume(70), root / "LITS-Challenge-Test-Data" / "test-volume-0.nii")
    return root


def write_dicom_series(array: np.ndarray, folder: Path, spacing_xyz, origin_xyz, uid: str) -> None:
    """Write a (z, y, x) int16 array as one CT DICOM series (one file per slice, axial, LPS).

    GDCM's writer resets the process locale to "C" (Python then decodes text as ASCII): it is restored.
    """
    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_slices(array, folder, spacing_xyz, origin_xyz, uid)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_slices(array: np.ndarray, folder: Path, spacing_xyz, origin_xyz, uid: str) -> None:
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(array.shape[0]):
        image = sitk.GetImageFromArray(array[k:k + 1])
        position = (origin_xyz[0], origin_xyz[1], origin_xyz[2] + k * spacing_xyz[2])
        tags = {
            "0008|0060": "CT", "0010|0020": folder.parts[-3], "0020|000d": uid + ".1", "0020|000e": uid + ".2",
            "0020|0013": str(k + 1), "0020|0032": "\\".join(f"{v:.4f}" for v in position),
            "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": f"{spacing_xyz[1]:.4f}\\{spacing_xyz[0]:.4f}",
            "0018|0050": f"{spacing_xyz[2]:.4f}", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{uid}.3.{k + 1}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        image.SetSpacing((spacing_xyz[0], spacing_xyz[1], spacing_xyz[2]))
        image.SetOrigin(position)
        writer.SetFileName(str(folder / f"1-{k + 1:03d}.dcm"))
        writer.Execute(image)


TCIA_SPACING_XYZ = (0.66, 0.66, 1.5)
TCIA_ORIGIN_XYZ = (-170.0, -190.0, -250.0)


def make_tcia(root: Path, numbers=(1, 2)) -> Path:
    """`Pancreas-CT/PANCREAS_NNNN/<study>/<series>/1-NNN.dcm` + `TCIA_pancreas_labels-02-05-2017/labelNNNN.nii.gz`."""
    for n in numbers:
        series = (root / "Pancreas-CT" / f"PANCREAS_{n:04d}" / f"11-24-2015-PANCREAS{n:04d}-Pancreas-9966{n}"
                  / f"Pancreas-9966{n}")
        write_dicom_series(volume(n), series, TCIA_SPACING_XYZ, TCIA_ORIGIN_XYZ, f"1.2.826.0.1.3680043.2.1125.{n}")
        write(label_map(n, [0, 1]), root / "TCIA_pancreas_labels-02-05-2017" / f"label{n:04d}.nii.gz",
              spacing=TCIA_SPACING_XYZ, origin=TCIA_ORIGIN_XYZ, direction=tuple(np.eye(3).ravel()))
    return root


def make_btcv_json(root: Path, training=(1, 2, 3, 4, 5), validation=(6,), tests=(61,)) -> Path:
    """MONAI's BTCV folder: imagesTr/img0001, labelsTr/label0001, imagesTs/img0061 and dataset_0.json."""
    def pair(n: int) -> dict:
        write(volume(n), root / "imagesTr" / f"img{n:04d}.nii.gz")
        write(label_map(n, list(range(14))), root / "labelsTr" / f"label{n:04d}.nii.gz")
        return {"image": f"imagesTr/img{n:04d}.nii.gz", "label": f"labelsTr/label{n:04d}.nii.gz"}

    for n in tests:
        write(volume(n), root / "imagesTs" / f"img{n:04d}.nii.gz")
    obj = {"description": "btcv yucheng", "modality": {"0": "CT"}, "training": [pair(n) for n in training],
           "validation": [pair(n) for n in validation], "test": [f"imagesTs/img{n:04d}.nii.gz" for n in tests]}
    (root / "dataset_0.json").write_text(json.dumps(obj, indent=4))
    return root


def masilab_list(path: Path, training: list[str], test: list[str], folder_suffix: str = "") -> Path:
    """A json list shaped like MASILab's dataset_*.json: 'training' dicts, 'test' paths with `_0000`."""
    obj = {"training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in training],
           "test": [f"./imagesTs/{n}{folder_suffix}.nii.gz" for n in test]}
    path.write_text(json.dumps(obj))
    return path
