"""AMOS, FLARE21, FeTA, KiTS19, LiTS, TCIA Pancreas-CT and BTCV-json converters on fake releases laid out
as distributed: case names, nesting, label values, geometry (KiTS axis order, DICOM series) and splits."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from convert_fakes import DIRECTION, ORIGIN_XYZ, SPACING_XYZ, label_map, read, tree_digest, volume
from release_fakes import (
    KITS_AFFINE, KITS_SHAPE, TCIA_ORIGIN_XYZ, TCIA_SPACING_XYZ, kits_arrays, make_amos, make_btcv_json, make_feta,
    make_flare, make_kits, make_lits, make_tcia, masilab_list,
)

from unetr_pp.dataset.converters import convert_task
from unetr_pp.io import load_dataset_json, read_image
from unetr_pp.training.data.splits import load_or_create_splits
from unetr_pp.utilities.errors import UnetrPPError


def convert(source, raw, out, **kwargs):
    """Convert with the raw input proven untouched -> (ConvertedTask, DatasetInfo)."""
    before = tree_digest(raw)
    result = convert_task(source, raw, output_dir=out, num_processes=1, **kwargs)
    assert tree_digest(raw) == before
    return result, load_dataset_json(result.path)


def ids(cases):
    return [c.case_id for c in cases]


def assert_same_file_content(converted, source_array, source_geometry=(SPACING_XYZ, ORIGIN_XYZ, DIRECTION)):
    array, image = read(converted)
    np.testing.assert_array_equal(array, source_array)
    spacing, origin, direction = source_geometry
    assert image.GetSpacing() == pytest.approx(spacing) and image.GetOrigin() == pytest.approx(origin)
    assert image.GetDirection() == pytest.approx(direction)


def test_amos_ct_cases_official_split_and_labels(tmp_path):
    result, info = convert("amos", make_amos(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task218_AMOS2022"
    assert ids(info.training_cases) == ["amos_0001", "amos_0004", "amos_0008"]  # Tr + Va, CT ids <= 500
    assert ids(info.test_cases) == ["amos_0002"]
    assert info.channel_names == {0: "CT"} and len(info.labels) == 16 and info.labels[13] == "duodenum"
    assert info.preset_splits == {"0": {"val": ["amos_0008"]}}
    assert_same_file_content(result.path / "imagesTr" / "amos_0008_0000.nii.gz", volume(8))
    assert_same_file_content(result.path / "labelsTr" / "amos_0008.nii.gz", label_map(8, list(range(16))))
    mri, info = convert("amos", tmp_path / "download", tmp_path / "mri", modality="mri")
    assert ids(info.training_cases) == ["amos_0507", "amos_0510"] and ids(info.test_cases) == ["amos_0511"]
    assert info.channel_names == {0: "MRI"} and info.preset_splits == {"0": {"val": ["amos_0510"]}}


def test_amos_masilab_list_moves_listed_training_cases_to_a_labelled_test_set(tmp_path):
    raw = make_amos(tmp_path / "download")
    listed = masilab_list(tmp_path / "dataset_AMOS.json", ["amos_0001", "amos_0008"], ["amos_0004"])
    result, info = convert("amos", raw, tmp_path / "out", split_json=listed)
    assert ids(info.training_cases) == ["amos_0001", "amos_0008"] and ids(info.test_cases) == ["amos_0004"]
    assert info.preset_splits is None  # the MASILab list has no 'validation': ordinary 5-fold CV
    assert_same_file_content(result.path / "labelsTs" / "amos_0004.nii.gz", label_map(4, list(range(16))))
    assert any("left out" in w for w in result.warnings)


def test_flare21_layout_labels_and_masilab_list(tmp_path):
    raw = make_flare(tmp_path / "FLARE21")
    result, info = convert("flare21", raw, tmp_path / "out")
    assert result.path.name == "Task221_FLARE2021"
    assert info.labels == {0: "background", 1: "liver", 2: "kidney", 3: "spleen", 4: "pancreas"}
    assert ids(info.training_cases) == ["train_000", "train_001", "train_002"]
    assert ids(info.test_cases) == ["validation_001"]
    assert_same_file_content(result.path / "labelsTr" / "train_002.nii.gz", label_map(2, [0, 1, 2, 3, 4]))
    listed = masilab_list(tmp_path / "dataset_FLARE.json", ["train_000", "train_001"], ["train_002"], "_0000")
    _, info = convert("flare21", raw, tmp_path / "out2", split_json=listed)
    assert ids(info.training_cases) == ["train_000", "train_001"] and ids(info.test_cases) == ["train_002"]


def test_feta_bids_subjects_and_masilab_numbering(tmp_path):
    result, info = convert("feta", make_feta(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task222_FeTA2021"
    assert ids(info.training_cases) == ["sub-001", "sub-002", "sub-003"] and len(info.labels) == 8
    assert info.labels[7] == "brainstem" and info.channel_names == {0: "T2w"}
    eye = (0.5, 0.5, 0.5), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel())
    assert_same_file_content(result.path / "labelsTr" / "sub-002.nii.gz", label_map(2, list(range(8))), eye)
    listed = masilab_list(tmp_path / "dataset_FeTA.json", ["FeTA_000", "FeTA_002"], ["FeTA_001"])
    _, info = convert("feta", tmp_path / "download", tmp_path / "out2", split_json=listed)
    assert ids(info.training_cases) == ["sub-001", "sub-003"] and ids(info.test_cases) == ["sub-002"]


def test_kits19_reoriented_to_ras_with_every_voxel_at_its_physical_place(tmp_path):
    result, info = convert("kits19", make_kits(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task040_KiTS2019" and info.raw["unetr_pp_conversion"]["reoriented_to"] == "RAS"
    assert ids(info.training_cases) == ["case_00000", "case_00001"] and ids(info.test_cases) == ["case_00210"]
    source_image, source_seg = kits_arrays(1)
    files = (("imagesTr/case_00001_0000.nii.gz", source_image), ("labelsTr/case_00001.nii.gz", source_seg))
    for name, source in files:
        array, geometry = read_image(result.path / name)
        assert geometry.spacing == pytest.approx((3.0, 0.78, 0.78))  # slice axis first, as the other CT tasks
        assert geometry.itk_direction == pytest.approx((-1, 0, 0, 0, -1, 0, 0, 0, 1))
        image = sitk.ReadImage(str(result.path / name))
        for i, j, k in np.ndindex(*KITS_SHAPE):  # nibabel voxel (slice, row, col) -> RAS mm -> ITK LPS mm
            ras = KITS_AFFINE @ np.array([i, j, k, 1.0])
            x, y, z = image.TransformPhysicalPointToIndex((-ras[0], -ras[1], ras[2]))
            assert array[z, y, x] == source[i, j, k]
    reread = nib.load(result.path / "imagesTr" / "case_00001_0000.nii.gz")
    assert nib.aff2axcodes(reread.affine) == ("R", "A", "S") and reread.shape == (7, 6, 5)


def test_lits_batches_and_test_volumes(tmp_path):
    result, info = convert("lits", make_lits(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task029_LiTS" and info.labels == {0: "background", 1: "liver", 2: "tumor"}
    assert ids(info.training_cases) == ["lits_000", "lits_001", "lits_028"]
    assert ids(info.test_cases) == ["lits_test_000"]
    assert_same_file_content(result.path / "labelsTr" / "lits_028.nii.gz", label_map(28, [0, 1, 2]))
    assert_same_file_content(result.path / "imagesTs" / "lits_test_000_0000.nii.gz", volume(70))


def test_tcia_pancreas_dicom_series_and_labels(tmp_path):
    result, info = convert("tcia_pancreas", make_tcia(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task230_TCIAPancreas" and result.warnings == []
    assert ids(info.training_cases) == ["pancreas_0001", "pancreas_0002"]
    geometry = TCIA_SPACING_XYZ, TCIA_ORIGIN_XYZ, tuple(np.eye(3).ravel())
    assert_same_file_content(result.path / "imagesTr" / "pancreas_0002_0000.nii.gz", volume(2), geometry)
    assert_same_file_content(result.path / "labelsTr" / "pancreas_0002.nii.gz", label_map(2, [0, 1]), geometry)


def test_btcv_json_keeps_the_monai_split_and_training_uses_it(tmp_path):
    result, info = convert("btcv_json", make_btcv_json(tmp_path / "download"), tmp_path / "out")
    assert result.path.name == "Task018_BTCV_MONAI" and len(info.labels) == 14
    assert ids(info.training_cases) == [f"img{n:04d}" for n in range(1, 7)] and ids(info.test_cases) == ["img0061"]
    assert info.preset_splits == {"0": {"val": ["img0006"]}}
    splits = load_or_create_splits(tmp_path / "pre", ids(info.training_cases), info.preset_splits)
    assert splits[0] == {"train": [f"img{n:04d}" for n in range(1, 6)], "val": ["img0006"]}


def test_official_split_reaches_the_plans(env_folders):
    from unetr_pp.cli.plan_and_preprocess import main as plan_main

    raw = make_btcv_json(env_folders["unetr_pp_raw_data_base"].parent / "download")
    convert_task("btcv_json", raw, num_processes=1)
    assert plan_main(["-t", "18", "--no_preprocessing", "-tf", "1", "-tl", "1"]) == 0
    plans = json.loads(next((env_folders["unetr_pp_preprocessed"] / "Task018_BTCV_MONAI").glob("*Plans*.json"))
                       .read_text())
    assert plans["preset_splits"] == {"0": {"val": ["img0006"]}}
    assert plan_main(["-t", "18", "--no_preprocessing", "--preset", "demo", "-p", "demo_plans"]) == 0
    plans = json.loads((env_folders["unetr_pp_preprocessed"] / "Task018_BTCV_MONAI" / "demo_plans.json").read_text())
    assert plans["preset"] == "demo" and plans["preset_splits"] == {"0": {"val": ["img0006"]}}
    assert plan_main(["-t", "18", "--no_preprocessing", "--preset", "synapse", "-p", "syn_plans"]) == 0
    plans = json.loads((env_folders["unetr_pp_preprocessed"] / "Task018_BTCV_MONAI" / "syn_plans.json").read_text())
    assert plans["preset_splits"]["0"]["val"][:2] == ["img0001", "img0002"]  # a preset's own split wins


def test_option_for_another_source_is_refused(tmp_path):
    with pytest.raises(UnetrPPError, match="--modality does not apply to --source lits"):
        convert_task("lits", make_lits(tmp_path / "download"), output_dir=tmp_path / "out", modality="ct")


def test_cli_with_a_json_list(tmp_path, capsys):
    from unetr_pp.cli.convert_task import main

    raw = make_flare(tmp_path / "FLARE21")
    listed = masilab_list(tmp_path / "dataset_FLARE.json", ["train_000", "train_002"], ["train_001"], "_0000")
    assert main(["--source", "flare21", "-i", str(raw), "-o", str(tmp_path / "out"), "--split_json", str(listed),
                 "-np", "1"]) == 0
    out = capsys.readouterr().out
    assert "Task221_FLARE2021: 2 training case(s), 1 test case(s)" in out and "left out" in out
    assert main(["--source", "lits", "-i", str(raw), "--split_json", str(listed)]) == 2
    assert "--split_json does not apply to --source lits (only to: amos, flare21, feta, btcv_json)" in \
        capsys.readouterr().err
