"""Export: resampling vs skimage/scipy, labels and regions, geometry round trip on rotated anisotropic cropped cases."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from skimage.transform import resize

from unetr_pp.inference.export import export_prediction, probabilities_to_labels
from unetr_pp.io import Geometry, read_image, write_image
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json


def rotated_geometry(spacing) -> Geometry:
    """30 degrees about the ITK z axis plus a small tilt: direction far from identity."""
    a, b = np.deg2rad(30), np.deg2rad(10)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return Geometry(tuple(spacing), (-12.5, 40.25, 7.0), tuple((rz @ rx).ravel()))


def synthetic_case(scale: int = 1) -> tuple[np.ndarray, list[list[int]]]:
    """(label (20, 30, 26) * scale, crop box): an ellipsoid (1) and a box (2) inside the crop box."""
    z, y, x = np.indices((20 * scale, 30 * scale, 26 * scale)) / scale
    label = np.zeros(z.shape, dtype=np.uint8)
    label[((z - 9) / 6.0) ** 2 + ((y - 12) / 7.0) ** 2 + ((x - 11) / 6.0) ** 2 <= 1] = 1
    label[(z >= 12) & (z < 17) & (y >= 16) & (y < 24) & (x >= 13) & (x < 21)] = 2
    return label, [[2 * scale, 18 * scale], [3 * scale, 25 * scale], [4 * scale, 22 * scale]]


def preprocess_label(label, bbox, spacing, transpose, target_spacing):
    """Crop to `bbox`, transpose, resample (one-hot linear + argmax, skimage) -> (one-hot probabilities, properties)."""
    cropped = label[tuple(slice(lo, hi) for lo, hi in bbox)]
    moved = cropped.transpose(transpose)
    moved_spacing = [spacing[t] for t in transpose]
    new_shape = [int(round(s * sp / tsp)) for s, sp, tsp in zip(moved.shape, moved_spacing, target_spacing)]
    onehot = [resize((moved == k).astype(np.float32), new_shape, order=1, mode="edge", anti_aliasing=False)
              for k in range(3)]
    resampled = np.argmax(onehot, axis=0)
    probs = np.stack([resampled == k for k in range(3)]).astype(np.float32)
    properties = {
        "case_id": "case_001",
        "geometry": rotated_geometry(spacing).to_json(),
        "original_shape": list(label.shape),
        "bbox": bbox,
        "shape_after_cropping": list(cropped.shape),
        "original_spacing": list(spacing),
        "transpose_forward": list(transpose),
        "spacing_after_resampling": list(target_spacing),
        "shape_after_resampling": new_shape,
        "use_nonzero_mask": False,
    }
    return probs, properties


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def check_geometry(path, spacing):
    image = sitk.ReadImage(str(path))
    expected = rotated_geometry(spacing)
    np.testing.assert_allclose(image.GetSpacing(), expected.itk_spacing, rtol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), expected.itk_origin, atol=1e-5)
    np.testing.assert_allclose(image.GetDirection(), expected.itk_direction, atol=1e-6)


@pytest.mark.parametrize("target", [[3.0, 0.8, 0.9], [3.0, 0.5, 0.6], [1.5, 0.8, 0.45]])
def test_round_trip_without_loss_is_exact(tmp_path, target):
    """Same or finer spacing: nearest upsampling is undone exactly by the export's linear downsampling."""
    spacing = (0.8, 3.0, 0.9)
    label, bbox = synthetic_case()
    probs, props = preprocess_label(label, bbox, spacing, (1, 0, 2), target)
    export_prediction(probs, props, tmp_path / "case_001.nii.gz")
    written, _ = read_image(tmp_path / "case_001.nii.gz")
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, label)
    check_geometry(tmp_path / "case_001.nii.gz", spacing)


@pytest.mark.parametrize("target", [[3.0, 1.05, 1.35], [1.5, 1.0, 1.0]])
def test_lossy_round_trip_keeps_99_percent_of_voxels(tmp_path, target):
    """Coarser spacing loses parts of a boundary shell: >= 99 % of voxels and Dice > 0.9 per label survive."""
    spacing = (0.8, 3.0, 0.9)
    label, bbox = synthetic_case(scale=2)
    probs, props = preprocess_label(label, bbox, spacing, (1, 0, 2), target)
    export_prediction(probs, props, tmp_path / "case_001.nrrd")
    written, _ = read_image(tmp_path / "case_001.nrrd")
    assert written.shape == label.shape
    assert (written == label).mean() >= 0.99
    outside = np.ones(label.shape, bool)
    outside[tuple(slice(lo, hi) for lo, hi in bbox)] = False
    assert not written[outside].any()
    assert dice(written == 1, label == 1) > 0.9 and dice(written == 2, label == 2) > 0.9
    check_geometry(tmp_path / "case_001.nrrd", spacing)


def test_saved_probabilities_are_in_original_shape_with_background_outside(tmp_path):
    spacing = (0.8, 3.0, 0.9)
    label, bbox = synthetic_case()
    probs, props = preprocess_label(label, bbox, spacing, (1, 0, 2), [3.0, 0.8, 0.9])
    export_prediction(probs.astype(np.float16), props, tmp_path / "case_001.nii.gz", save_probabilities=True)
    saved = np.load(tmp_path / "case_001.npz")["probabilities"]
    assert saved.shape == (3, 20, 30, 26) and saved.dtype == np.float16
    np.testing.assert_array_equal(saved.argmax(0), label)
    assert (saved[0, 0] == 1).all() and (saved[1:, 0] == 0).all()
    assert load_json(tmp_path / "case_001.json")["bbox"] == bbox


def test_regions_are_written_in_class_order():
    wt = np.zeros((1, 4, 4, 4), np.float32)
    wt[0, 1:3] = 0.9
    tc = np.zeros_like(wt)
    tc[0, 2, 1:3] = 0.8
    et = np.zeros_like(wt)
    et[0, 2, 2, 2] = 0.7
    labels = probabilities_to_labels(np.concatenate([wt, tc, et]), [1, 2, 3])
    expected = np.zeros((4, 4, 4), np.uint8)
    expected[1:3] = 1
    expected[2, 1:3] = 2
    expected[2, 2, 2] = 3
    np.testing.assert_array_equal(labels, expected)
    with pytest.raises(UnetrPPError, match="regions_class_order"):
        probabilities_to_labels(np.concatenate([wt, tc]), [1, 2, 3])


def test_many_labels_use_uint16():
    probs = np.zeros((300, 1, 1, 2), np.float32)
    probs[299, 0, 0, 0] = 1
    probs[0, 0, 0, 1] = 1
    labels = probabilities_to_labels(probs, None)
    assert labels.dtype == np.uint16 and labels.tolist() == [[[299, 0]]]


def test_missing_properties_name_the_case(tmp_path):
    with pytest.raises(UnetrPPError, match="case_x: properties lack .*bbox"):
        export_prediction(np.zeros((2, 2, 2, 2), np.float32), {"case_id": "case_x", "geometry": {}},
                          tmp_path / "x.nii.gz")
    assert not list(tmp_path.iterdir())


def test_input_image_geometry_matches_written_prediction(tmp_path):
    """The exported file lines up voxel for voxel with an input image written with the same geometry."""
    spacing = (0.8, 3.0, 0.9)
    label, bbox = synthetic_case()
    write_image(label.astype(np.float32), rotated_geometry(spacing), tmp_path / "img_0000.nii.gz")
    probs, props = preprocess_label(label, bbox, spacing, (1, 0, 2), [3.0, 0.8, 0.9])
    export_prediction(probs, props, tmp_path / "pred.nii.gz")
    _, g_in = read_image(tmp_path / "img_0000.nii.gz")
    _, g_out = read_image(tmp_path / "pred.nii.gz")
    assert g_in.mismatch(g_out, tol=1e-6) == []
