"""ACDC, BraTS and MSD converters on tiny fake releases: names, channel split, geometry, labels, errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from convert_fakes import (
    DIRECTION, ORIGIN_XYZ, SPACING_XYZ, conversion_error, label_map, make_acdc, make_brats, make_msd, read,
    tree_digest, volume, write,
)

from unetr_pp.dataset.converters import convert_task
from unetr_pp.io import load_dataset_json, read_case_images, read_image
from unetr_pp.utilities.errors import UnetrPPError


def convert_untouched(source: str, raw, out, num_processes: int = 1):
    """Convert, check the raw input is byte-identical afterwards -> (ConvertedTask, DatasetInfo)."""
    before = tree_digest(raw)
    result = convert_task(source, raw, output_dir=out, num_processes=num_processes)
    assert tree_digest(raw) == before, "the raw input was modified"
    return result, load_dataset_json(result.path)


def test_acdc_frames_labels_and_phases(tmp_path):
    result, info = convert_untouched("acdc", make_acdc(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task001_ACDC"
    assert info.labels == {0: "background", 1: "RV", 2: "Myo", 3: "LV"}
    assert [c.case_id for c in info.training_cases] == [
        "patient001_frame01", "patient001_frame12", "patient002_frame01", "patient002_frame10"]
    assert [c.case_id for c in info.test_cases] == ["patient101_frame01", "patient101_frame14"]
    assert (result.path / "labelsTs" / "patient101_frame14.nii.gz").is_file()
    assert not any("4d" in p.name for p in result.path.rglob("*.nii.gz"))
    conversion = info.raw["unetr_pp_conversion"]
    assert conversion["phases"]["patient001_frame12"] == "ES" and conversion["phases"]["patient002_frame01"] == "ED"
    array, geometry = read_image(result.path / "imagesTr" / "patient002_frame10_0000.nii.gz")
    np.testing.assert_array_equal(array, volume(210))
    assert geometry.spacing == pytest.approx((10.0, 1.37, 1.37))
    label, _ = read(result.path / "labelsTr" / "patient002_frame10.nii.gz")
    np.testing.assert_array_equal(label, label_map(10, [0, 1, 2, 3]))


def test_acdc_wrong_layout(tmp_path):
    raw = make_acdc(tmp_path / "download")
    patient = raw / "database" / "training" / "patient002"
    (patient / "patient002_frame10_gt.nii.gz").unlink()
    (raw / "database" / "training" / "notes").mkdir()
    (patient / "Info.cfg").write_text("ED: one\nES: 10\n")
    text = conversion_error("acdc", raw, tmp_path / "out")
    assert "3 problem(s) found" in text
    assert "patient002_frame10.nii.gz: no matching label patient002_frame10_gt.nii.gz" in text
    assert "training/notes: unexpected folder (expected training/patientNNN/)" in text
    assert "Info.cfg: ED must be a frame number, got 'one'" in text
    assert "patient001/patient001_frame01_gt.nii.gz" in text  # the expected-layout hint


def test_brats_channels_and_label_mapping(tmp_path):
    raw = make_brats(tmp_path / "MICCAI_BraTS2020_TrainingData")
    result, info = convert_untouched("brats", raw, tmp_path / "out", num_processes=2)
    assert result.path.name == "Task003_tumor"
    assert info.channel_names == {0: "FLAIR", 1: "T1", 2: "T1ce", 3: "T2"}
    assert info.labels == {0: "background", 1: "edema", 2: "non-enhancing tumor", 3: "enhancing tumour"}
    assert info.raw["unetr_pp_conversion"]["regions"] == {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}
    assert [c.case_id for c in info.training_cases] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    assert [c.case_id for c in info.test_cases] == ["BraTS20_Validation_001"]
    case = info.training_cases[1]
    data, geometry = read_case_images(case.images)
    for k in range(4):  # channel k is the k-th modality of FLAIR, T1, T1ce, T2
        np.testing.assert_array_equal(data[k], volume(1, np.int16) // 10 + 1000 * (k + 1))
    assert geometry.itk_origin == pytest.approx(ORIGIN_XYZ) and geometry.itk_direction == pytest.approx(DIRECTION)
    raw_seg = label_map(1, [0, 1, 2, 4])  # stored as float32 .nii like BraTS 2020
    seg, seg_image = read(case.label)
    assert seg.dtype == np.uint8 and seg_image.GetOrigin() == pytest.approx(ORIGIN_XYZ)
    expected = np.select([raw_seg == 2, raw_seg == 1, raw_seg == 4], [1, 2, 3], 0)
    np.testing.assert_array_equal(seg, expected)
    assert set(np.unique(seg)) == {0, 1, 2, 3}


def test_brats_missing_modality_and_bad_labels(tmp_path):
    raw = make_brats(tmp_path / "raw", testing=())
    (raw / "BraTS20_Training_002" / "BraTS20_Training_002_t1ce.nii").unlink()
    (raw / "BraTS20_Training_001" / "notes.nii.gz").write_bytes(b"x")
    text = conversion_error("brats", raw, tmp_path / "out")
    assert "BraTS20_Training_002: missing _t1ce image(s)" in text
    assert "notes.nii.gz: unexpected file" in text
    text = conversion_error("brats", make_brats(tmp_path / "val", training=()), tmp_path / "out")
    assert "no case folder has a _seg label file" in text
    (tmp_path / "empty").mkdir()
    assert "empty: no case folders" in conversion_error("brats", tmp_path / "empty", tmp_path / "out")
    raw = make_brats(tmp_path / "raw3", training=("case_a",), testing=())
    write(np.full((6, 8, 8), 3, np.uint8), raw / "case_a" / "case_a_seg.nii.gz")
    text = conversion_error("brats", raw, tmp_path / "out3")
    assert "case_a_seg.nii.gz: unexpected label values [3] (allowed: [0, 1, 2, 4])" in text


def test_msd_4d_split_into_channels(tmp_path):
    task = make_msd(tmp_path, "Task01_BrainTumour", channels=4)
    result, info = convert_untouched("msd", task, tmp_path / "out", num_processes=2)
    assert result.path.name == "Task001_BrainTumour"
    names = sorted(p.name for p in (result.path / "imagesTr").iterdir())
    assert names == [f"case_{n:03d}_{c:04d}.nii.gz" for n in (1, 3) for c in range(4)]
    assert sorted(p.name for p in (result.path / "imagesTs").iterdir()) == [f"case_007_{c:04d}.nii.gz" for c in range(4)]
    assert info.channel_names == {0: "FLAIR", 1: "T1w", 2: "t1gd", 3: "T2w"}
    assert info.raw["licence"] == "CC-BY-SA 4.0" and info.raw["unetr_pp_conversion"]["msd_task"] == "Task01_BrainTumour"
    data, geometry = read_case_images(info.training_cases[1].images)
    assert data.shape == (4, 6, 8, 8)
    for c in range(4):
        np.testing.assert_array_equal(data[c], volume(30 + c))
    assert geometry.spacing == pytest.approx(tuple(reversed(SPACING_XYZ)))
    assert geometry.itk_origin == pytest.approx(ORIGIN_XYZ) and geometry.itk_direction == pytest.approx(DIRECTION)
    label, label_geometry = read_image(info.training_cases[1].label)
    np.testing.assert_array_equal(label, label_map(3, [0, 1]))
    assert not label_geometry.mismatch(geometry)


def test_msd_3d_copied_as_channel_0000(tmp_path):
    task = make_msd(tmp_path, "Task06_Lung", channels=1, test_labels=True)
    result = convert_task("msd", task, output_dir=tmp_path / "out", num_processes=1)
    assert result.path.name == "Task006_Lung"
    label, _ = read(result.path / "labelsTs" / "case_007.nii.gz")
    np.testing.assert_array_equal(label, label_map(7, [0, 1]))
    assert load_dataset_json(result.path).raw["unetr_pp_conversion"]["labels_test_folder"] == "labelsTs"
    assert sorted(p.name for p in (result.path / "imagesTr").iterdir()) == ["case_001_0000.nii.gz", "case_003_0000.nii.gz"]
    source = task / "imagesTr" / "case_003.nii.gz"
    assert (result.path / "imagesTr" / "case_003_0000.nii.gz").read_bytes() == source.read_bytes()
    renamed = convert_task("msd", task, task_id=42, name="LungCopy", output_dir=tmp_path / "out", num_processes=1)
    assert renamed.path.name == "Task042_LungCopy"


def test_msd_wrong_layout(tmp_path):
    task = make_msd(tmp_path, "Task01_BrainTumour", channels=4)
    (task / "labelsTr" / "case_003.nii.gz").unlink()
    write(volume(9), task / "imagesTr" / "case_009.nii.gz")
    write(volume(1), task / "imagesTs" / "case_007.nii.gz")  # 3D where 4 modalities are listed
    write(volume(1), task / "labelsTs" / "case_008.nii.gz")
    text = conversion_error("msd", task, tmp_path / "out")
    assert "4 problem(s) found" in text
    assert "labelsTr/case_003.nii.gz: file not found" in text
    assert "labelsTs/case_008.nii.gz: not listed in dataset.json" in text
    assert "case_009.nii.gz: not listed in dataset.json" in text
    assert "imagesTs/case_007.nii.gz: has 1 volume(s), dataset.json lists 4 modalities" in text
    assert "hidden '._*' files" in text


def test_msd_needs_task_id_and_json(tmp_path):
    task = make_msd(tmp_path, "Task06_Lung")
    plain = tmp_path / "lung_download"
    shutil.copytree(task, plain)
    with pytest.raises(UnetrPPError, match="task id cannot be derived; give -t ID"):
        convert_task("msd", plain, output_dir=tmp_path / "out")
    (plain / "dataset.json").write_text(json.dumps({"modality": {"zero": "CT"}, "labels": {}, "training": []}))
    text = conversion_error("msd", plain, tmp_path / "out", task_id=6)
    assert "'modality' key 'zero' is not an integer id" in text and "'labels' must be a non-empty object" in text
    assert "'training' must be a non-empty list" in text


def test_already_converted_task_is_explained(tmp_path):
    task = make_msd(tmp_path, "Task06_Lung")
    result = convert_task("msd", task, output_dir=tmp_path / "out", num_processes=1)
    shutil.copy(task / "dataset.json", result.path / "dataset.json")
    with pytest.raises(UnetrPPError, match="already split into channels .* needs no conversion"):
        convert_task("msd", result.path, task_id=7, output_dir=tmp_path / "out2")


def test_output_inside_raw_input_refused(tmp_path):
    task = make_msd(tmp_path, "Task06_Lung")
    before = tree_digest(tmp_path)
    renamed = task.rename(tmp_path / "Task006_Lung")
    with pytest.raises(UnetrPPError, match="would replace the raw input"):
        convert_task("msd", renamed, output_dir=tmp_path, overwrite=True)
    with pytest.raises(UnetrPPError, match="would be written inside the raw input"):
        convert_task("msd", renamed, output_dir=renamed / "converted")
    assert tree_digest(tmp_path) == {k.replace("Task06_Lung", "Task006_Lung"): v for k, v in before.items()}


def test_msd_seed_synapse_layout_with_test_cases_from_training(tmp_path):
    """The UNETR++ seed's Task02_Synapse lists its 12 test cases in imagesTs/labelsTs and in 'training'."""
    task = make_msd(tmp_path, "Task02_Synapse")
    shutil.copy(task / "imagesTr" / "case_001.nii.gz", task / "imagesTs" / "case_001.nii.gz")
    write(label_map(1, [0, 1]), task / "labelsTs" / "case_001.nii.gz")
    obj = json.loads((task / "dataset.json").read_text())
    obj["test"] = ["./imagesTs/case_001.nii.gz", "./imagesTs/case_007.nii.gz"]
    (task / "dataset.json").write_text(json.dumps(obj))
    result = convert_task("msd", task, output_dir=tmp_path / "out", num_processes=1)
    assert result.path.name == "Task002_Synapse"
    info = load_dataset_json(result.path)
    assert [c.case_id for c in info.training_cases] == ["case_001", "case_003"]
    assert [c.case_id for c in info.test_cases] == ["case_001", "case_007"]
    assert sorted(p.name for p in (result.path / "labelsTs").iterdir()) == ["case_001.nii.gz"]
    obj["training"].append(obj["training"][0])
    (task / "dataset.json").write_text(json.dumps(obj))
    with pytest.raises(UnetrPPError, match="case case_001 is listed twice in 'training'"):
        convert_task("msd", task, task_id=5, output_dir=tmp_path / "out")


def test_msd_unreadable_dataset_json(tmp_path):
    task = make_msd(tmp_path, "Task06_Lung")
    (task / "dataset.json").write_text("[1, 2]")
    assert "dataset.json: top level must be a JSON object" in conversion_error("msd", task, tmp_path / "out")
    (task / "dataset.json").write_text("{'modality': ")
    assert "dataset.json: not valid JSON (line 1, column 2" in conversion_error("msd", task, tmp_path / "out")
    (task / "dataset.json").unlink()
    assert "dataset.json: file not found" in conversion_error("msd", task, tmp_path / "out")
