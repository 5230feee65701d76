"""Bad releases: missing / extra files, unknown label values, image/label geometry mismatch -> every problem
listed (the first few per kind, with file names), exit code 2, no task folder written."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
from convert_fakes import conversion_error, label_map, volume, write
from release_fakes import (
    KITS_AFFINE, KITS_SHAPE, make_amos, make_btcv_json, make_feta, make_flare, make_kits, make_lits, make_tcia,
)

from unetr_pp.cli.convert_task import main


def run_cli(capsys, source, raw, out) -> str:
    """Run the CLI, which must fail with exit code 2 and leave `out` without any task -> stderr."""
    assert main(["--source", source, "-i", str(raw), "-o", str(out), "-np", "1"]) == 2
    assert not out.exists() or not any(out.iterdir()), "a partial task folder was left behind"
    return capsys.readouterr().err


def test_amos_missing_extra_and_mismatched_files_all_listed(tmp_path, capsys):
    raw = make_amos(tmp_path / "download")
    (raw / "labelsTr" / "amos_0004.nii.gz").unlink()
    write(volume(3), raw / "imagesTr" / "amos_notes.nii.gz")
    write(label_map(8, list(range(16))), raw / "labelsVa" / "amos_0008.nii.gz", spacing=(0.7, 0.7, 5.0))
    err = run_cli(capsys, "amos", raw, tmp_path / "out")
    assert err.startswith("error: ") and "3 problem(s) found" in err
    assert "imagesTr/amos_0004.nii.gz: no matching labelsTr/amos_0004.nii.gz" in err
    assert "imagesTr/amos_notes.nii.gz: unexpected file (expected amos_NNNN.nii.gz)" in err
    assert "labelsVa/amos_0008.nii.gz: spacing [5.0, 0.7, 0.7] differs from amos_0008.nii.gz [3.0, 0.79, 0.79]" in err
    assert "imagesVa/amos_0008.nii.gz" in err  # the expected-layout hint follows


def test_many_problems_of_one_kind_are_capped(tmp_path, capsys):
    raw = make_flare(tmp_path / "download", numbers=tuple(range(9)), validation=())
    for n in range(2, 9):
        (raw / "TrainingMask" / f"train_{n:03d}.nii.gz").unlink()
    (raw / "TrainingImg" / "train_000_0001.nii.gz").write_bytes(b"x")
    err = run_cli(capsys, "flare21", raw, tmp_path / "out")
    assert "8 problem(s) found" in err
    assert err.count("no matching TrainingMask") == 5
    assert "train_006_0000.nii.gz: no matching TrainingMask/train_006.nii.gz" in err
    assert "... and 2 more problem(s) like: no matching #" in err
    assert "train_000_0001.nii.gz: unexpected file (expected train_NNN_0000.nii.gz)" in err


def test_unknown_label_values_listed_for_every_file_and_nothing_written(tmp_path, capsys):
    raw = make_kits(tmp_path / "download", labelled=(0, 1, 2), unlabelled=())
    for n in (0, 2):
        seg = np.zeros(KITS_SHAPE, np.uint8)
        seg[0, 0, :2] = (3, 7)
        nib.save(nib.Nifti1Image(seg, KITS_AFFINE), raw / "data" / f"case_{n:05d}" / "segmentation.nii.gz")
    err = run_cli(capsys, "kits19", raw, tmp_path / "out")
    assert "nothing was written: 2 problem(s) found" in err
    for n in (0, 2):
        assert f"case_{n:05d}/segmentation.nii.gz: unexpected label values [3, 7] (allowed: [0, 1, 2])" in err


def test_kits_lits_feta_layout_problems(tmp_path):
    raw = make_kits(tmp_path / "kits")
    (raw / "data" / "case_00001" / "imaging.nii.gz").unlink()
    write(volume(1), raw / "data" / "case_00000" / "imaging_old.nii.gz")
    (raw / "data" / "scratch").mkdir()
    text = conversion_error("kits19", raw, tmp_path / "out")
    assert "case_00001: no imaging.nii.gz" in text and "imaging_old.nii.gz: unexpected file" in text
    assert "scratch: unexpected folder (expected case_NNNNN/)" in text
    raw = make_lits(tmp_path / "lits")
    (raw / "Training Batch 1" / "volume-1.nii").unlink()
    (raw / "Training Batch 2" / "liver.nii").write_bytes(b"x")
    text = conversion_error("lits", raw, tmp_path / "out")
    assert "segmentation-1.nii: no matching volume-1.nii" in text and "liver.nii: unexpected file" in text
    raw = make_feta(tmp_path / "feta")
    (raw / "feta_2.1" / "sub-002" / "anat" / "sub-002_rec-irtk_dseg.nii.gz").unlink()
    write(volume(1), raw / "feta_2.1" / "sub-001" / "anat" / "sub-001_rec-mial_T1w.nii.gz")
    text = conversion_error("feta", raw, tmp_path / "out")
    assert "sub-002/anat: no sub-002_rec-<rec>_dseg.nii.gz label" in text
    assert "sub-001_rec-mial_T1w.nii.gz: unexpected file" in text


def test_tcia_and_btcv_json_problems(tmp_path):
    raw = make_tcia(tmp_path / "tcia", numbers=(1, 2, 3))
    patient = raw / "Pancreas-CT" / "PANCREAS_0002"
    series = next(patient.rglob("*.dcm")).parent
    shutil.copytree(series, series.parent / "second-series")
    (raw / "TCIA_pancreas_labels-02-05-2017" / "label0003.nii.gz").unlink()
    write(label_map(9, [0, 1]), raw / "TCIA_pancreas_labels-02-05-2017" / "label0009.nii.gz")
    write(label_map(1, [0, 1])[:5], raw / "TCIA_pancreas_labels-02-05-2017" / "label0001.nii.gz")
    text = conversion_error("tcia_pancreas", raw, tmp_path / "out")
    assert "PANCREAS_0002: 2 folders with .dcm files, expected one series folder" in text
    assert "Pancreas-99663: no matching label0003.nii.gz" in text
    assert "label0009.nii.gz: no matching PANCREAS_0009 DICOM series" in text
    assert "label0001.nii.gz: shape [5, 8, 8] differs from Pancreas-99661 [6, 8, 8]" in text
    raw = make_btcv_json(tmp_path / "btcv")
    (raw / "labelsTr" / "label0002.nii.gz").unlink()
    write(volume(9), raw / "imagesTr" / "img0009.nii.gz")
    obj = json.loads((raw / "dataset_0.json").read_text())
    obj["validation"].append({"image": "imagesTr/img0001.nii.gz", "label": "labelsTr/label0001.nii.gz"})
    (raw / "dataset_0.json").write_text(json.dumps(obj))
    text = conversion_error("btcv_json", raw, tmp_path / "out")
    assert "labelsTr/label0002.nii.gz: file not found (listed in dataset_0.json 'training')" in text
    assert "imagesTr/img0009.nii.gz: not listed in dataset_0.json" in text
    assert "case img0001 appears twice" in text


def test_json_list_problems(tmp_path):
    raw = make_flare(tmp_path / "flare", validation=())
    listed = tmp_path / "dataset_FLARE.json"
    listed.write_text(json.dumps({"training": [{"label": "./labelsTr/train_000.nii.gz"}], "test": 3}))
    text = conversion_error("flare21", raw, tmp_path / "out", split_json=listed)
    assert "dataset_FLARE.json: not a valid json list: 2 problem(s) found" in text
    assert "training[0] has no image path" in text and "'test' must be a list" in text
    listed.write_text(json.dumps({"training": [{"image": "./imagesTr/train_000.nii.gz"},
                                               {"image": "./imagesTr/train_007.nii.gz"}],
                                  "validation": [{"image": "./imagesTr/train_001.nii.gz"}],
                                  "test": ["./imagesTs/train_000_0000.nii.gz"]}))
    text = conversion_error("flare21", raw, tmp_path / "out", split_json=listed)
    assert "training entry train_007 (case train_007) is not in the release" in text
    assert "case train_000 is listed in 'training' and 'test'" in text
