import gzip
import json

import numpy as np
import pytest
import SimpleITK as sitk

from unetr_pp.io import Geometry, load_dataset_json, read_case_images, read_image, write_image
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, publish_folder, save_json

ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_image_round_trip_keeps_geometry(tmp_path, ending):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    geometry = Geometry(spacing=(3.0, 0.7, 0.8), itk_origin=(10.0, -5.0, 2.5), itk_direction=ROTATED)
    path = tmp_path / f"img{ending}"
    write_image(array, geometry, path)
    back, back_geometry = read_image(path)
    np.testing.assert_array_equal(back, array)
    assert back_geometry.mismatch(geometry) == []
    # SimpleITK itself sees x/y/z spacing in reversed order
    assert sitk.ReadImage(str(path)).GetSpacing() == pytest.approx((0.8, 0.7, 3.0))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(UnetrPPError, match="missing.nii.gz: file not found"):
        read_image(tmp_path / "missing.nii.gz")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"x")
    with pytest.raises(UnetrPPError, match="unsupported file type"):
        read_image(bad)
    good = tmp_path / "good.nii.gz"
    write_image(np.random.rand(8, 8, 8).astype(np.float32), Geometry((1, 1, 1), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1)), good)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UnetrPPError, match="truncated.nii.gz"):
        read_image(truncated)
    half = tmp_path / "half.nii.gz"
    half.write_bytes(good.read_bytes()[:-4])
    with pytest.raises(UnetrPPError, match="half.nii.gz: truncated file"):
        read_image(half)
    plain = tmp_path / "plain.nii"
    write_image(np.ones((8, 8, 8), np.float32), Geometry((1, 1, 1), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1)), plain)
    short = tmp_path / "short.nii"
    short.write_bytes(plain.read_bytes()[:-1])
    with pytest.raises(UnetrPPError, match=r"short.nii: truncated file \(2399 of 2400 bytes"):
        read_image(short)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(UnetrPPError, match="garbage.nii.gz"):
        read_image(garbage)


def test_read_case_images_stacks_channels_and_checks_geometry(tmp_path):
    geometry = Geometry((2.0, 1.0, 1.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    a, b = tmp_path / "c_0000.nii.gz", tmp_path / "c_0001.nii.gz"
    write_image(np.zeros((3, 4, 5), np.float32), geometry, a)
    write_image(np.ones((3, 4, 5), np.float32), geometry, b)
    data, geo = read_case_images([a, b])
    assert data.shape == (2, 3, 4, 5) and data.dtype == np.float32
    assert data[1].sum() == 60
    moved = tmp_path / "c_0002.nii.gz"
    write_image(np.ones((3, 4, 5), np.float32), Geometry((2.0, 1.0, 1.0), (5, 0, 0), geometry.itk_direction), moved)
    with pytest.raises(UnetrPPError, match="c_0002.nii.gz: itk_origin differ"):
        read_case_images([a, moved])


def test_dataset_json_v1(tmp_path):
    save_json({
        "name": "demo", "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "spleen", "2": "liver"},
        "numTraining": 2,
        "training": [{"image": "./imagesTr/case_a.nii.gz", "label": "./labelsTr/case_a.nii.gz"},
                     {"image": "./imagesTr/case_b.nii.gz", "label": "./labelsTr/case_b.nii.gz"}],
        "test": ["./imagesTs/case_c.nii.gz"],
    }, tmp_path / "dataset.json")
    info = load_dataset_json(tmp_path)
    assert info.format_version == 1
    assert info.channel_names == {0: "CT"}
    assert info.labels == {0: "background", 1: "spleen", 2: "liver"}
    assert info.num_classes == 3 and info.foreground_labels == [1, 2]
    assert [c.case_id for c in info.training_cases] == ["case_a", "case_b"]
    assert info.training_cases[0].images == (tmp_path / "imagesTr" / "case_a_0000.nii.gz",)
    assert info.training_cases[0].label == tmp_path / "labelsTr" / "case_a.nii.gz"
    assert info.test_cases[0].images == (tmp_path / "imagesTs" / "case_c_0000.nii.gz",)


def test_dataset_json_v2_with_regions(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    for case in ("BraTS_001", "BraTS_002"):
        for c in range(4):
            (tmp_path / "imagesTr" / f"{case}_{c:04d}.nii.gz").write_bytes(b"")
    save_json({
        "channel_names": {"0": "FLAIR", "1": "T1", "2": "T1c", "3": "T2"},
        "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3},
        "regions_class_order": [1, 2, 3], "numTraining": 2, "file_ending": ".nii.gz",
    }, tmp_path / "dataset.json")
    info = load_dataset_json(tmp_path)
    assert info.format_version == 2 and info.num_channels == 4
    assert info.regions == {"whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert info.num_classes == 3 and info.label_values == {0, 1, 2, 3}
    assert [c.case_id for c in info.training_cases] == ["BraTS_001", "BraTS_002"]
    assert len(info.training_cases[1].images) == 4


def test_dataset_json_errors(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(UnetrPPError, match=r"dataset.json: not valid JSON \(line 1"):
        load_dataset_json(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(UnetrPPError, match="missing keys"):
        load_dataset_json(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"modality": {"0": "CT"}, "labels": {"a": "b"}}))
    with pytest.raises(UnetrPPError) as err:
        load_dataset_json(tmp_path)
    text = str(err.value)
    assert "'labels' key 'a' is not an integer id" in text and "'training' must be a list" in text
    with pytest.raises(UnetrPPError, match="task folder not found"):
        load_dataset_json(tmp_path / "nope")


def test_save_json_is_atomic_and_converts_numpy(tmp_path):
    path = tmp_path / "sub" / "x.json"
    save_json({"a": np.float32(1.5), "b": np.arange(3), "c": np.int64(2)}, path)
    assert load_json(path) == {"a": 1.5, "b": [0, 1, 2], "c": 2}
    with pytest.raises(TypeError):
        save_json({"bad": object()}, path)
    assert load_json(path) == {"a": 1.5, "b": [0, 1, 2], "c": 2}, "failed write must keep the old file"
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_publish_folder_replaces_only_after_success(tmp_path):
    final, staging = tmp_path / "task", tmp_path / ".task.partial"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    publish_folder(staging, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task"] and (final / "new.txt").read_text() == "new"

    staging.mkdir()
    (staging / "newer.txt").write_text("newer")
    publish_folder(staging, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task"]
    assert sorted(p.name for p in final.iterdir()) == ["newer.txt"]

    with pytest.raises(FileNotFoundError):  # staging vanished: the existing folder is put back unchanged
        publish_folder(tmp_path / "missing", final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task"]
    assert sorted(p.name for p in final.iterdir()) == ["newer.txt"]
