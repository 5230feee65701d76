import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from unetr_pp.cli.evaluate import main
from unetr_pp.evaluation import PROTOCOLS, evaluate_folders
from unetr_pp.evaluation.protocols import resolve_protocol
from unetr_pp.io import Geometry, read_image, write_image
from unetr_pp.utilities.errors import UnetrPPError

GEOMETRY = Geometry((2.0, 1.0, 1.0), (10.0, -4.0, 3.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
SHAPE = (6, 8, 9)


def _two_cases():
    """Hand-checked pair of cases (see test_summary_numbers_by_hand)."""
    ref_a, pred_a = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    ref_a[1:3, 1:3, 1:3] = pred_a[1:3, 1:3, 1:3] = 1  # identical 2x2x2 cube: Dice 1, HD95 0
    ref_a[4, 5, 5], pred_a[4, 5, 7] = 2, 2  # single voxels 2 voxels apart along x (1 mm): Dice 0, HD95 2
    ref_b, pred_b = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    ref_b[1:3, 1:3, 1:3] = 1
    pred_b[1:3, 1:3, 1:2] = 1  # half the cube: Dice 8/12; distances 8 x 0 mm and 4 x 1 mm -> HD95 1
    ref_b[0, 0, 0] = 3  # label 3 only in the reference of case b; label 2 absent from case b
    return {"case_a": (ref_a, pred_a), "case_b": (ref_b, pred_b)}


def _write_folders(root, cases, ending=".nii.gz"):
    ref_dir, pred_dir = root / "ref", root / "pred"
    for case, (ref, pred) in cases.items():
        write_image(ref, GEOMETRY, ref_dir / f"{case}{ending}")
        write_image(pred, GEOMETRY, pred_dir / f"{case}{ending}")
    return ref_dir, pred_dir


@pytest.fixture
def folders(tmp_path):
    return _write_folders(tmp_path, _two_cases())


def test_summary_numbers_by_hand(folders, tmp_path):
    ref_dir, pred_dir = folders
    summary = evaluate_folders(ref_dir, pred_dir, out_dir=tmp_path / "out", num_processes=1)
    assert list(summary) == [
        "hd95_unit", "empty_convention", "protocol", "hd95_definition", "metric_per_case", "mean", "foreground_mean"
    ]
    assert (summary["hd95_unit"], summary["empty_convention"]) == ("mm", "nan")
    assert [c["case"] for c in summary["metric_per_case"]] == ["case_a", "case_b"]
    case_a, case_b = (c["metrics"] for c in summary["metric_per_case"])
    assert list(case_a) == ["label_1", "label_2", "label_3"]
    assert case_a["label_1"] == {"Dice": 1.0, "HD95": 0.0, "TP": 8, "FP": 0, "FN": 0, "n_ref": 8, "n_pred": 8,
                                 "vol_ref_ml": 0.016, "vol_pred_ml": 0.016}
    assert (case_a["label_2"]["Dice"], case_a["label_2"]["HD95"]) == (0.0, 2.0)
    assert (case_a["label_3"]["Dice"], case_a["label_3"]["HD95"]) == (None, None)  # both empty
    assert case_b["label_1"]["Dice"] == 2 * 4 / 12 and case_b["label_1"]["HD95"] == 1.0
    assert (case_b["label_1"]["TP"], case_b["label_1"]["FP"], case_b["label_1"]["FN"]) == (4, 0, 4)
    assert (case_b["label_3"]["Dice"], case_b["label_3"]["HD95"], case_b["label_3"]["FN"]) == (0.0, None, 1)

    mean = summary["mean"]
    assert mean["label_1"]["Dice"] == pytest.approx(5 / 6) and mean["label_1"]["Dice_std"] == pytest.approx(1 / 6)
    assert mean["label_1"]["HD95"] == 0.5 and mean["label_1"]["HD95_std"] == 0.5
    assert (mean["label_2"]["Dice"], mean["label_2"]["HD95"], mean["label_2"]["n_both_empty"]) == (0.0, 2.0, 1)
    assert (mean["label_3"]["Dice"], mean["label_3"]["HD95"], mean["label_3"]["n_one_empty"]) == (0.0, None, 1)
    assert summary["foreground_mean"]["Dice"] == pytest.approx((5 / 6 + 0 + 0) / 3)
    assert summary["foreground_mean"]["HD95"] == pytest.approx((0.5 + 2.0) / 2)

    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk == summary
    assert '"HD95": null' in (tmp_path / "out" / "summary.json").read_text()
    with open(tmp_path / "out" / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 3
    assert rows[5]["case"] == "case_b" and rows[5]["label"] == "label_3"
    assert (rows[5]["Dice"], rows[5]["HD95"], rows[5]["FN"]) == ("0.0", "", "1")
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| mean ± std | 83.33 ± 16.67 | 0.00 ± 0.00 | 0.00 ± 0.00 | 1.25 | 27.78 |" in table
    assert "HD95 unit: mm" in table and "medpy 0.5.2" in table and "empty masks (nan)" in table
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")], "temp file left behind"


def test_unetrpp_convention_voxel_unit_and_parallel(folders):
    ref_dir, pred_dir = folders
    summary = evaluate_folders(ref_dir, pred_dir, hd95_unit="voxel", empty="unetrpp", num_processes=2)
    case_a, case_b = (c["metrics"] for c in summary["metric_per_case"])
    assert (case_a["label_3"]["Dice"], case_a["label_3"]["HD95"]) == (1.0, 0.0)  # both empty
    assert (case_b["label_3"]["Dice"], case_b["label_3"]["HD95"]) == (0.0, 0.0)  # one empty
    assert (case_b["label_2"]["Dice"], case_b["label_2"]["HD95"]) == (1.0, 0.0)
    assert case_a["label_2"]["HD95"] == 2.0  # 2 voxels along x
    assert case_b["label_1"]["HD95"] == 1.0
    assert summary["mean"]["label_2"]["Dice"] == 0.5 and summary["mean"]["label_3"]["HD95"] == 0.0
    assert summary["foreground_mean"]["Dice"] == pytest.approx((5 / 6 + 0.5 + 0.5) / 3)


def test_dataset_json_beside_references_names_the_labels(tmp_path):
    ref_dir, pred_dir = _write_folders(tmp_path / "task", _two_cases())
    (tmp_path / "task" / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2, "cyst": 3},
        "file_ending": ".nii.gz", "numTraining": 2,
    }))
    summary = evaluate_folders(ref_dir, pred_dir, num_processes=1)
    assert summary["protocol"] == "dataset.json"
    assert list(summary["mean"]) == ["liver", "tumor", "cyst"]
    only = evaluate_folders(ref_dir, pred_dir, labels=[2], num_processes=1)
    assert list(only["mean"]) == ["tumor"]
    assert only["mean"]["tumor"]["HD95"] == 2.0


def test_protocol_label_sets():
    synapse = PROTOCOLS["synapse"].targets
    assert [(t.ids, t.name) for t in synapse] == [
        ((1,), "spleen"), ((2,), "right_kidney"), ((3,), "left_kidney"), ((4,), "gallbladder"),
        ((6,), "liver"), ((7,), "stomach"), ((8,), "aorta"), ((11,), "pancreas"),
    ]
    assert [t.ids[0] for t in PROTOCOLS["btcv"].targets] == list(range(1, 14))
    assert [(t.name, t.ids) for t in PROTOCOLS["acdc"].targets] == [("RV", (1,)), ("Myo", (2,)), ("LV", (3,))]
    assert [(t.name, t.ids) for t in PROTOCOLS["brats"].targets] == [("WT", (1, 2, 3)), ("TC", (2, 3)), ("ET", (3,))]
    picked = resolve_protocol("synapse", [5, 6], None, None)
    assert [(t.name, t.ids) for t in picked.targets] == [("esophagus", (5,)), ("liver", (6,))]
    with pytest.raises(UnetrPPError, match=r"label\(s\) \[20\] are not part of protocol 'acdc'"):
        resolve_protocol("acdc", [20], None, None)


def test_brats_regions_from_folders(tmp_path):
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ref[1:4, 2:6, 2:6] = 1
    ref[2:4, 3:5, 3:5] = 2
    ref[3, 3, 3] = 3
    pred[1:4, 2:6, 2:6] = 1
    pred[2:4, 3:5, 3:5] = 3
    ref_dir, pred_dir = _write_folders(tmp_path, {"brats_001": (ref, pred)})
    metrics = evaluate_folders(ref_dir, pred_dir, protocol="brats", num_processes=1)["metric_per_case"][0]["metrics"]
    assert metrics["WT"]["Dice"] == 1.0 and metrics["TC"]["Dice"] == 1.0
    assert (metrics["ET"]["n_ref"], metrics["ET"]["n_pred"], metrics["ET"]["TP"]) == (1, 8, 1)
    assert metrics["ET"]["Dice"] == 2 / 9


def test_cli_writes_reports_and_prints_the_table(folders, capsys):
    ref_dir, pred_dir = folders
    assert main(["-ref", str(ref_dir), "-pred", str(pred_dir), "--protocol", "acdc", "-np", "1"]) == 0
    out = capsys.readouterr().out
    assert "| DSC (%) | RV | Myo | LV | mean HD95 (mm) ↓ | mean DSC (%) ↑ |" in out
    summary = json.loads((pred_dir / "summary.json").read_text())
    assert summary["protocol"] == "acdc" and list(summary["mean"]) == ["RV", "Myo", "LV"]


def _error(capsys, argv):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_lists_every_missing_prediction(folders, tmp_path, capsys):
    ref_dir, pred_dir = folders
    write_image(np.zeros(SHAPE, np.uint8), GEOMETRY, ref_dir / "case_c.nii.gz")
    (pred_dir / "case_a.nii.gz").unlink()
    err = _error(capsys, ["-ref", str(ref_dir), "-pred", str(pred_dir), "-np", "1"])
    assert "predictions missing for 2 of 3 reference case(s)" in err
    assert f"{pred_dir / 'case_a.nii.gz'}: missing" in err and f"{pred_dir / 'case_c.nii.gz'}: missing" in err
    assert not (pred_dir / "summary.json").exists()
    summary = evaluate_folders(ref_dir, pred_dir, only_predicted=True, num_processes=1)
    assert [c["case"] for c in summary["metric_per_case"]] == ["case_b"]


def test_cli_reports_every_geometry_mismatch(folders, capsys):
    ref_dir, pred_dir = folders
    pred, _ = read_image(pred_dir / "case_a.nii.gz")
    bad = {
        "case_a": Geometry((2.0, 1.0, 1.5), GEOMETRY.itk_origin, GEOMETRY.itk_direction),
        "case_b": Geometry(GEOMETRY.spacing, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)),
    }
    for case, geometry in bad.items():
        write_image(pred, geometry, pred_dir / f"{case}.nii.gz")
    write_image(np.zeros(SHAPE, np.uint8), GEOMETRY, ref_dir / "case_c.nii.gz")
    write_image(np.zeros((6, 8, 8), np.uint8), GEOMETRY, pred_dir / "case_c.nii.gz")
    err = _error(capsys, ["-ref", str(ref_dir), "-pred", str(pred_dir), "-np", "1"])
    assert "predictions do not match their references: 4 problem(s) found" in err
    assert f"{pred_dir / 'case_a.nii.gz'}: spacing (2.0, 1.0, 1.5) differs from reference" in err
    assert f"{pred_dir / 'case_b.nii.gz'}: itk_origin" in err and f"{pred_dir / 'case_b.nii.gz'}: itk_direction" in err
    assert f"{pred_dir / 'case_c.nii.gz'}: shape (6, 8, 8) differs from reference" in err
    assert not (pred_dir / "summary.json").exists()


def test_cli_rejects_labels_outside_the_protocol(folders, tmp_path, capsys):
    ref_dir, pred_dir = folders
    pred, _ = read_image(pred_dir / "case_b.nii.gz")
    pred[5, 7, 8] = 7
    write_image(pred, GEOMETRY, pred_dir / "case_b.nii.gz")
    out_dir = tmp_path / "new" / "out"
    argv = ["-ref", str(ref_dir), "-pred", str(pred_dir), "--protocol", "acdc", "-np", "1", "-o", str(out_dir)]
    err = _error(capsys, argv)
    assert f"{pred_dir / 'case_b.nii.gz'}: label value(s) [7] not in the protocol's labels [0, 1, 2, 3]" in err
    assert not (tmp_path / "new").exists()


def test_output_folder_that_cannot_be_created(folders, tmp_path, capsys):
    ref_dir, pred_dir = folders
    (tmp_path / "file").write_text("x")
    err = _error(capsys, ["-ref", str(ref_dir), "-pred", str(pred_dir), "-o", str(tmp_path / "file" / "out")])
    assert f"{tmp_path / 'file' / 'out'}: output folder cannot be created ({tmp_path / 'file'} is not a folder)" in err


def test_cli_unreadable_and_non_label_files(folders, capsys):
    ref_dir, pred_dir = folders
    (pred_dir / "case_a.nii.gz").write_bytes(b"\x1f\x8b garbage")
    write_image(np.full(SHAPE, 0.5, np.float32), GEOMETRY, pred_dir / "case_b.nii.gz")
    err = _error(capsys, ["-ref", str(ref_dir), "-pred", str(pred_dir), "-np", "1"])
    assert str(pred_dir / "case_a.nii.gz") in err and "Traceback" not in err
    (pred_dir / "case_a.nii.gz").write_bytes((ref_dir / "case_a.nii.gz").read_bytes())
    err = _error(capsys, ["-ref", str(ref_dir), "-pred", str(pred_dir), "-np", "1"])
    assert f"{pred_dir / 'case_b.nii.gz'}: non-integer voxel values, not a label image" in err


def test_float_label_files_are_accepted(folders):
    ref_dir, pred_dir = folders
    pred, _ = read_image(pred_dir / "case_b.nii.gz")
    write_image(pred.astype(np.float32), GEOMETRY, pred_dir / "case_b.nii.gz")
    summary = evaluate_folders(ref_dir, pred_dir, num_processes=1)
    assert summary["metric_per_case"][1]["metrics"]["label_1"]["Dice"] == 2 * 4 / 12


def test_module_entry_point_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "unetr_pp.cli.evaluate", "-ref", str(tmp_path / "nope"), "-pred", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: reference folder not found"


def test_one_case_with_two_processes_uses_two_threads(folders, monkeypatch):
    from unetr_pp.evaluation import folders as folders_module

    seen = []
    original = folders_module.compute_case_metrics

    def recording(*args):
        seen.append(args[-1])
        return original(*args)

    monkeypatch.setattr(folders_module, "compute_case_metrics", recording)
    ref_dir, pred_dir = folders[0], folders[1]
    only = sorted(p.name for p in pred_dir.iterdir())[0]
    single = pred_dir.parent / "single_prediction"
    single.mkdir()
    (single / only).write_bytes((pred_dir / only).read_bytes())
    two = evaluate_folders(ref_dir, single, protocol="synapse", num_processes=2, only_predicted=True)
    one = evaluate_folders(ref_dir, single, protocol="synapse", num_processes=1, only_predicted=True)
    assert seen == [2, 1]
    assert json.dumps(two["metric_per_case"][0]["metrics"]) == json.dumps(one["metric_per_case"][0]["metrics"])
