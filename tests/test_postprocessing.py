"""Largest-component postprocessing (apply and nnU-Net's decision rule), label maps for external testing."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unetr_pp.cli.evaluate import main as evaluate_main
from unetr_pp.evaluation import PROTOCOLS, evaluate_folders
from unetr_pp.evaluation.protocols import Target
from unetr_pp.inference.export import export_prediction
from unetr_pp.io import Geometry, read_image, write_image
from unetr_pp.inference.postprocessing import apply_postprocessing, keep_largest_component
from unetr_pp.evaluation.postprocessing_rule import determine_postprocessing
from unetr_pp.inference.label_map import parse_label_map
from unetr_pp.utilities.errors import UnetrPPError

GEOMETRY = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
SHAPE = (14, 14, 14)


def test_keep_largest_component_is_26_connected_and_keeps_ties():
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:4, 1:4, 1:4] = 1  # 27 voxels
    labels[4, 4, 4] = 1  # touches the cube only by a corner: same 26-component
    labels[8:10, 8:10, 8:10] = 2  # 8 voxels of label 2
    labels[12, 12, 12] = 1  # island
    out = keep_largest_component(labels, (1,))
    expected = labels.copy()
    expected[12, 12, 12] = 0
    assert np.array_equal(out, expected) and labels[12, 12, 12] == 1  # input untouched
    components, _ = ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))
    assert len(np.unique(components[out == 1])) == 1  # scipy agrees: one component left
    union = keep_largest_component(labels, (1, 2))  # label 2 (8 voxels) is not connected to the 28-voxel part
    assert np.count_nonzero(union == 2) == 0 and np.count_nonzero(union == 1) == 28
    ties = np.zeros(SHAPE, np.uint8)
    ties[0:2, 0:2, 0:2] = ties[6:8, 6:8, 6:8] = 3
    ties[12, 12, 12] = 3
    kept = keep_largest_component(ties, (3,))
    assert np.count_nonzero(kept) == 16 and kept[12, 12, 12] == 0
    assert np.array_equal(apply_postprocessing(labels, ()), labels)


def _write_pairs(root, cases):
    pairs = []
    for name, (ref, pred) in cases.items():
        write_image(ref, GEOMETRY, root / "ref" / f"{name}.nii.gz")
        write_image(pred, GEOMETRY, root / "pred" / f"{name}.nii.gz")
        pairs.append((name, root / "ref" / f"{name}.nii.gz", root / "pred" / f"{name}.nii.gz"))
    return pairs


def _organs():
    ref = np.zeros(SHAPE, np.uint8)
    ref[1:4, 1:4, 1:4] = 1  # 27 voxels of label 1
    ref[8:12, 8:12, 8:12] = 2  # 64 voxels of label 2
    return ref


TWO = (Target("a", (1,)), Target("b", (2,)))


@pytest.mark.parametrize("num_processes", [1, 2])
def test_rule_per_target_wins_and_loses(tmp_path, num_processes):
    island_ref = _organs()
    island_pred = island_ref.copy()
    island_pred[1, 10, 1:3] = 1  # false-positive island of label 1 (2 voxels)
    two_blobs = _organs()
    two_blobs[1:3, 10:12, 10:12] = 2  # label 2 truly has a second, 8-voxel blob
    pairs = _write_pairs(tmp_path, {"island": (island_ref, island_pred), "blobs": (two_blobs, two_blobs.copy())})
    decision = determine_postprocessing(pairs, TWO, num_processes)
    fg = decision["foreground"]
    # whole foreground: the 64-voxel label-2 block is the largest component, label 1 vanishes -> a falls
    assert fg["ids"] == [1, 2] and fg["applied"] is False and fg["targets_worse"] == ["a", "b"]
    assert fg["dice_before"] == pytest.approx(((54 / 56 + 1) / 2 + 1) / 2)
    assert fg["dice_after"] == pytest.approx((0.0 + (1 + 128 / 136) / 2) / 2)
    a, b = decision["per_target"]
    assert (a["applied"], a["dice_before"], a["dice_after"]) == (True, pytest.approx((54 / 56 + 1) / 2), 1.0)
    assert (b["applied"], b["dice_before"], b["dice_after"]) == (False, 1.0, pytest.approx((1 + 128 / 136) / 2))
    assert decision["steps"] == [{"name": "a", "ids": [1]}]
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", dataset_json=None, num_processes=1,
                               postprocessing=[(1,)])
    assert summary["mean"]["label_1"]["Dice"] == 1.0 and summary["mean"]["label_2"]["Dice"] == 1.0


def test_rule_whole_foreground_wins(tmp_path):
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = ref.copy()
    pred[11:13, 11:13, 11:13] = 1  # 8 false-positive voxels far away
    decision = determine_postprocessing(_write_pairs(tmp_path, {"c": (ref, pred)}), (Target("a", (1,)),))
    assert decision["foreground"]["applied"] is True
    assert decision["foreground"]["dice_before"] == pytest.approx(128 / 136)
    assert decision["foreground"]["dice_after"] == 1.0
    assert decision["steps"] == [{"name": "foreground", "ids": [1]}] and decision["per_target"] == []


def test_rule_with_overlapping_regions_is_sequential(tmp_path):
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:8, 2:8, 2:8] = 1
    ref[3:6, 3:6, 3:6] = 2  # kidney (1) with tumour (2) inside
    pred = ref.copy()
    pred[12, 12, 12] = 2  # tumour island
    decision = determine_postprocessing(_write_pairs(tmp_path, {"c": (ref, pred)}), PROTOCOLS["kits"].targets)
    # the foreground step already removes the island; the per-target steps then change nothing
    assert decision["foreground"]["applied"] is True
    assert [e["applied"] for e in decision["per_target"]] == [False, False]
    assert [e["dice_before"] for e in decision["per_target"]] == [1.0, 1.0]


def test_label_map_parsing_and_apply():
    label_map = parse_label_map(" 1+2 : 1, 3:2 ")
    assert label_map.entries == (((1, 2), 1), ((3,), 2)) and label_map.text == "1+2 : 1,3:2"
    assert label_map.reference_labels == (1, 2)
    labels = np.array([0, 1, 2, 3, 4], np.uint8)
    assert label_map.apply(labels).tolist() == [0, 1, 1, 2, 0]
    for bad, message in (("", "empty"), ("1-2", "expected PRED:REF"), ("0:1", "positive"), ("1:0", "positive"),
                         ("1:1,1+2:2", "predicted label 1 appears")):
        with pytest.raises(UnetrPPError, match=message):
            parse_label_map(bad)


def _flare_prediction():
    """A FLARE-labelled prediction: liver 1, kidney 2, spleen 3, pancreas 4."""
    pred = np.zeros(SHAPE, np.uint8)
    pred[1:5, 1:5, 1:5] = 1
    pred[8:11, 1:4, 1:4] = 2
    pred[9:13, 9:13, 9:13] = 3
    pred[1:3, 10:13, 10:13] = 4
    return pred


def test_external_testing_flare_to_msd_spleen_and_kits(tmp_path, capsys):
    pred = _flare_prediction()
    spleen = np.zeros(SHAPE, np.uint8)
    spleen[9:13, 9:12, 9:13] = 1  # MSD Spleen: label 1; 48 of the predicted 64 voxels
    _write_pairs(tmp_path / "spleen", {"spleen_1": (spleen, pred)})
    assert evaluate_main(["-ref", str(tmp_path / "spleen" / "ref"), "-pred", str(tmp_path / "spleen" / "pred"),
                          "--label_map", "3:1", "-o", str(tmp_path / "out_spleen"), "-np", "1"]) == 0
    summary = evaluate_folders(tmp_path / "spleen" / "ref", tmp_path / "spleen" / "pred", label_map="3:1",
                               num_processes=1)
    assert list(summary["mean"]) == ["label_1"] and summary["mean"]["label_1"]["Dice"] == pytest.approx(96 / 112)
    assert "3:1" in summary["protocol"] and "3:1" in (tmp_path / "out_spleen" / "summary.md").read_text()

    kits = np.zeros(SHAPE, np.uint8)
    kits[8:11, 1:4, 1:4] = 1
    kits[9, 2, 2] = 2  # tumour inside the kidney: the KiTS kidney target includes it
    _write_pairs(tmp_path / "kits", {"case_00000": (kits, pred)})
    summary = evaluate_folders(tmp_path / "kits" / "ref", tmp_path / "kits" / "pred", protocol="kits",
                               label_map="2:1", num_processes=1)
    assert list(summary["mean"]) == ["kidney"] and summary["mean"]["kidney"]["Dice"] == 1.0
    lits = np.zeros(SHAPE, np.uint8)
    lits[1:5, 1:5, 1:3] = 1
    lits[1:5, 1:5, 3:5] = 2  # half the predicted liver cube is tumour in LiTS: liver = {1, 2} is the whole cube
    lits[10, 1, 1] = 2  # and a tumour voxel outside it: 64 of 65 reference voxels predicted
    _write_pairs(tmp_path / "lits", {"volume-0": (lits, pred)})
    summary = evaluate_folders(tmp_path / "lits" / "ref", tmp_path / "lits" / "pred", protocol="lits",
                               label_map="1:1", num_processes=1)
    assert list(summary["mean"]) == ["liver"] and summary["mean"]["liver"]["Dice"] == pytest.approx(128 / 129)
    assert evaluate_main(["-ref", str(tmp_path / "kits" / "ref"), "-pred", str(tmp_path / "kits" / "pred"),
                          "--protocol", "feta", "--label_map", "2:9"]) == 2
    assert "no target of protocol 'feta' holds reference label(s) [9]" in capsys.readouterr().err
    assert evaluate_main(["-ref", str(tmp_path / "kits" / "ref"), "-pred", str(tmp_path / "kits" / "pred"),
                          "--protocol", "kits", "--label_map", "2:1,3:9"]) == 2
    assert "reference label(s) [9] are not part of protocol 'kits'" in capsys.readouterr().err
    assert evaluate_main(["-ref", str(tmp_path / "kits" / "ref"), "-pred", str(tmp_path / "kits" / "pred"),
                          "--label_map", "2;1"]) == 2
    assert "expected PRED:REF" in capsys.readouterr().err


def test_new_protocols_label_ids():
    assert [(t.name, t.ids) for t in PROTOCOLS["flare"].targets] == [
        ("liver", (1,)), ("kidney", (2,)), ("spleen", (3,)), ("pancreas", (4,))]
    amos = PROTOCOLS["amos"].targets
    assert len(amos) == 15 and [t.ids[0] for t in amos] == list(range(1, 16))
    assert (amos[8].name, amos[9].name, amos[12].name, amos[14].name) == (
        "postcava", "pancreas", "duodenum", "prostate_uterus")
    assert [t.name for t in PROTOCOLS["feta"].targets] == [
        "external_csf", "grey_matter", "white_matter", "ventricles", "cerebellum", "deep_grey_matter", "brainstem"]
    for name, organ in (("kits", "kidney"), ("lits", "liver"), ("msd_pancreas", "pancreas"),
                        ("msd_hepatic_vessel", "vessel")):
        protocol = PROTOCOLS[name]
        assert [(t.name, t.ids) for t in protocol.targets] == [(organ, (1, 2)), ("tumor", (2,))]
        assert protocol.allowed == frozenset({0, 1, 2})


def test_export_applies_postprocessing_then_label_map(tmp_path):
    probabilities = np.zeros((5,) + SHAPE, np.float32)
    labels = _flare_prediction()
    labels[13, 0, 13] = 3  # spleen island
    for k in range(5):
        probabilities[k][labels == k] = 1.0
    properties = {"geometry": GEOMETRY.to_json(), "original_shape": list(SHAPE), "bbox": [[0, 14]] * 3,
                  "shape_after_cropping": list(SHAPE), "original_spacing": [1.0] * 3, "transpose_forward": [0, 1, 2],
                  "spacing_after_resampling": [1.0] * 3}
    export_prediction(probabilities, properties, tmp_path / "plain.nii.gz")
    export_prediction(probabilities, properties, tmp_path / "post.nii.gz", postprocessing=[(3,)],
                      label_map=parse_label_map("3:1"))
    plain, _ = read_image(tmp_path / "plain.nii.gz")
    post, _ = read_image(tmp_path / "post.nii.gz")
    assert np.array_equal(plain, labels)
    expected = (labels == 3).astype(np.uint8)
    expected[13, 0, 13] = 0
    assert np.array_equal(post, expected)
