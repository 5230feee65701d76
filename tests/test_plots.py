"""Pictures: evaluation overlays (geometry, orientation, empty masks), metric plots, warnings instead of failures."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from unetr_pp.cli.evaluate import main as evaluate_main
from unetr_pp.evaluation import PROTOCOLS, evaluate_folders
from unetr_pp.evaluation import overlays
from unetr_pp.evaluation.overlays import PlotOptions, case_figure
from unetr_pp.evaluation.plots import metrics_figure
from unetr_pp.evaluation.views import display_frame, intensity_window
from unetr_pp.io import Geometry, write_image

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
FLIP_X = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SPACING = (4.0, 1.0, 4.0 / 3.0)  # z, y, x: a 20 x 80 x 60 volume is an 80 mm cube
SHAPE = (20, 80, 60)


def cube_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, reference, prediction): a bright 40 mm cube in air (HU), labelled 1 (reference), shifted prediction."""
    image = np.full(SHAPE, -1000, np.int16)
    image[5:15, 20:60, 15:45] = 1000  # 10 x 4 mm, 40 x 1 mm, 30 x 4/3 mm
    reference = np.zeros(SHAPE, np.uint8)
    reference[6:14, 24:56, 18:42] = 1
    prediction = np.roll(reference, 3 + seed, axis=2)
    return image, reference, prediction


def write_case(root, case, image, reference, prediction, direction=IDENTITY, spacing=SPACING):
    geometry = Geometry(spacing, (0.0, 0.0, 0.0), direction)
    write_image(image, geometry, root / "images" / f"{case}_0000.nii.gz")
    write_image(reference, geometry, root / "ref" / f"{case}.nii.gz")
    write_image(prediction, geometry, root / "pred" / f"{case}.nii.gz")


def white_squares(path) -> list[tuple[int, int]]:
    """(height, width) in pixels of the three largest pure-white regions not touching the picture's border."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    labels, count = ndimage.label((rgb > 250).all(axis=2))
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    boxes = [(b[0].stop - b[0].start, b[1].stop - b[1].start) for i, b in enumerate(ndimage.find_objects(labels), 1)
             if i not in border]
    return sorted(boxes, key=lambda hw: hw[0] * hw[1])[-3:]  # inside a contour, the cube is split: its outer part


def test_overlays_for_each_case_keep_the_physical_aspect(tmp_path, capsys):
    for i, case in enumerate(("case_a", "case_b")):
        write_case(tmp_path, case, *cube_case(i))
    code = evaluate_main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o", str(tmp_path / "out"),
                          "--plots", "-img", str(tmp_path / "images"), "-np", "1"])
    assert code == 0
    plots = tmp_path / "out" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["case_a.png", "case_b.png", "metrics.png"]
    for case in ("case_a", "case_b"):
        path = plots / f"{case}.png"
        assert path.stat().st_size < 300_000
        with Image.open(path) as picture:
            width, height = picture.size
            assert picture.info["dpi"] == pytest.approx((100, 100), abs=0.1)
        assert 900 <= width <= 1300 and 300 <= height <= 450
        squares = white_squares(path)  # the cube in the axial, coronal and sagittal panels
        for h, w in squares:
            assert h == pytest.approx(w, rel=0.05)  # 10 x 30 voxels in the coronal panel, square in mm
            assert h == pytest.approx(squares[0][0], abs=2)  # one mm scale for the three panels
            assert h == pytest.approx(0.5 * 320, rel=0.06)  # 40 of 80 mm, the panels 3.2 in high at 100 dpi
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "![DSC and HD95 per organ over cases](plots/metrics.png)" in table
    assert "[case_a](plots/case_a.png), [case_b](plots/case_b.png)" in table
    assert "CT" not in capsys.readouterr().err  # no warning, no note


def panels(figure) -> dict[str, np.ndarray]:
    """The image array shown in each panel, by view name."""
    views = ("axial", "coronal", "sagittal")
    return {views[i]: np.asarray(ax.get_images()[0].get_array()) for i, ax in enumerate(figure.axes)}


def bright_column(figure, view: str) -> float:
    """Mean column (0 = left edge, 1 = right edge) of the bright pixels drawn in one panel."""
    figure.canvas.draw()
    rgb = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)
    ax = figure.axes[("axial", "coronal", "sagittal").index(view)]
    box = ax.get_window_extent()
    rows = slice(int(rgb.shape[0] - box.y1) + 2, int(rgb.shape[0] - box.y0) - 2)
    crop = rgb[rows, int(box.x0) + 2:int(box.x1) - 2]
    columns = np.nonzero((crop > 250).all(axis=2))[1]
    return float(columns.mean() / crop.shape[1])


def test_a_flipped_direction_cosine_flips_the_picture(tmp_path):
    image, reference, prediction = cube_case()
    image[5:15, 20:60, 15:45] = -1000
    image[8:12, 30:50, 5:15] = 1000  # one bright block at low x: the patient's right with an identity direction
    image[8:12, 30:35, 20:50] = 500  # and a dimmer bar across
    prediction[6:14, 24:30, 21:45] = 0  # the largest disagreement is unique (not two mirrored slabs)

    def figure(name, direction, flip=False):
        arrays = [np.flip(a, axis=2) if flip else a for a in (image, reference, prediction)]
        geometry = Geometry(SPACING, (0.0, 0.0, 0.0), direction)
        write_image(arrays[0], geometry, tmp_path / f"{name}_0000.nii.gz")
        return panels(case_figure(name, arrays[1], arrays[2], geometry, PROTOCOLS["acdc"].targets[:1],
                                  PlotOptions(ct=True), tmp_path / f"{name}_0000.nii.gz", {}))

    plain = figure("plain", IDENTITY)
    flipped = figure("flipped", FLIP_X)
    same = figure("same", FLIP_X, flip=True)  # the array stored mirrored with a mirrored direction: same anatomy
    assert plain["axial"].shape == (80, 60) and plain["coronal"].shape == plain["sagittal"].shape[:1] + (60,)
    assert not np.array_equal(plain["axial"], np.fliplr(plain["axial"]))
    for view in ("axial", "coronal", "sagittal"):
        np.testing.assert_array_equal(same[view], plain[view])
    for view in ("axial", "coronal"):  # the left-right axis runs across these panels: mirrored
        np.testing.assert_array_equal(flipped[view], np.fliplr(plain[view]))
    np.testing.assert_array_equal(flipped["sagittal"], plain["sagittal"])


def test_radiological_orientation_of_the_drawn_pixels(tmp_path):
    """With the image drawn: the block at the patient's right is on the viewer's left; flipped x puts it right."""
    image = np.full(SHAPE, -1000, np.int16)
    image[8:12, 30:50, 5:15] = 1000
    reference = np.zeros(SHAPE, np.uint8)
    reference[8:12, 30:50, 5:15] = 1
    targets = PROTOCOLS["acdc"].targets[:1]
    sides = {}
    for name, direction in (("identity", IDENTITY), ("flipped", FLIP_X)):
        geometry = Geometry(SPACING, (0.0, 0.0, 0.0), direction)
        write_image(image, geometry, tmp_path / f"{name}_0000.nii.gz")
        fig = case_figure(name, reference, reference, geometry, targets, PlotOptions(ct=True),
                          tmp_path / f"{name}_0000.nii.gz", {})
        sides[name] = (bright_column(fig, "axial"), bright_column(fig, "coronal"))
    assert sides["identity"][0] < 0.35 and sides["identity"][1] < 0.35
    assert sides["flipped"][0] > 0.65 and sides["flipped"][1] > 0.65


def test_display_frame_follows_permuted_and_flipped_axes():
    # numpy axis 0 (ITK z) points along physical -y, axis 1 (ITK y) along +z, axis 2 (ITK x) along +x
    direction = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0)
    frame = display_frame(Geometry((3.0, 2.0, 1.0), (0.0, 0.0, 0.0), direction))
    assert frame.axes == (1, 0, 2) and frame.flips == (False, True, False)
    assert frame.spacing == (2.0, 3.0, 1.0)
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    np.testing.assert_array_equal(frame.apply(volume), np.transpose(volume, (1, 0, 2))[:, ::-1, :])
    assert frame.array_index((1, 0, 2), frame.apply(volume).shape) == (3, 1, 2)


def test_empty_prediction_and_empty_reference_still_give_a_picture(tmp_path, capsys):
    image, reference, _ = cube_case()
    empty = np.zeros(SHAPE, np.uint8)
    write_case(tmp_path, "no_prediction", image, reference, empty)
    write_case(tmp_path, "no_reference", image, empty, reference)
    write_case(tmp_path, "nothing", image, empty, empty)
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", labels=[1], out_dir=tmp_path / "out",
                               num_processes=1, plots=PlotOptions(tmp_path / "images", ("disagreement", "organs")))
    assert len(summary["metric_per_case"]) == 3
    for case, outlined in (("no_prediction", True), ("no_reference", True), ("nothing", False)):
        with Image.open(tmp_path / "out" / "plots" / f"{case}.png") as picture:
            rgb = np.asarray(picture.convert("RGB")).astype(int)
        blue = (rgb[..., 2] - rgb[..., 0] > 60).sum()  # label 1 is blue: the legend line (< 100 px) and contours
        assert (blue > 1000) == outlined, (case, blue)
    assert "warning" not in capsys.readouterr().err


def test_metric_plot_lists_every_organ(tmp_path):
    reference = np.zeros((6, 8, 9), np.uint8)
    reference[1:3, 1:3, 1:3] = 6  # liver only; the other 7 Synapse organs are absent everywhere
    geometry = Geometry((2.0, 1.0, 1.0), (0.0, 0.0, 0.0), IDENTITY)
    for case in ("a", "b"):
        write_image(reference, geometry, tmp_path / "ref" / f"{case}.nii.gz")
        write_image(reference, geometry, tmp_path / "pred" / f"{case}.nii.gz")
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", protocol="synapse", num_processes=1,
                               out_dir=tmp_path / "out", plots=PlotOptions())
    targets = PROTOCOLS["synapse"].targets
    figure = metrics_figure(summary, targets, "t")
    headers = ["Spl", "RKid", "LKid", "Gal", "Liv", "Sto", "Aor", "Pan"]
    for ax in figure.axes:
        assert [label.get_text() for label in ax.get_xticklabels()] == headers
    assert (tmp_path / "out" / "plots" / "metrics.png").is_file()
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "no -img folder given: no image: contours on a gray background" in table


def test_plot_failures_are_one_warning_line(tmp_path, monkeypatch, capsys):
    for i, case in enumerate(("case_a", "case_b")):
        write_case(tmp_path, case, *cube_case(i))
    write_image(np.zeros((3, 4, 5), np.int16), Geometry(SPACING, (0.0, 0.0, 0.0), IDENTITY),
                tmp_path / "images" / "case_b_0000.nii.gz")  # wrong shape

    def broken(*args):
        raise RuntimeError("no plotting today")

    monkeypatch.setattr(overlays, "metrics_figure", broken)
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", out_dir=tmp_path / "out", num_processes=1,
                               plots=PlotOptions(tmp_path / "images"))
    assert [c["case"] for c in summary["metric_per_case"]] == ["case_a", "case_b"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(lines) == 1
    assert lines[0].startswith("warning: 2 of 3 plot(s) (evaluation unaffected) not drawn (metrics: RuntimeError: "
                               "no plotting today; case_b: ")
    assert "case_b_0000.nii.gz: image shape (3, 4, 5) differs from the label shape (20, 80, 60))" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == ["case_a.png"]
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "[case_a](plots/case_a.png)" in table and "metrics.png" not in table


def test_windows(tmp_path):
    image = np.linspace(0, 1000, 1000).reshape(10, 10, 10)
    assert intensity_window(image, ct=True) == (-160.0, 240.0)  # level 40, width 400
    assert intensity_window(image, ct=False) == pytest.approx((5.0, 995.0))  # percentiles 0.5 and 99.5
    for modality, ct in (("CT", True), ("MRI", False)):
        (tmp_path / modality).mkdir()
        (tmp_path / modality / "dataset.json").write_text(json.dumps(
            {"name": "x", "modality": {"0": modality}, "labels": {"0": "background", "1": "a"}, "training": [],
             "numTraining": 0, "tensorImageSize": "3D"}))
        assert overlays.dataset_is_ct(tmp_path / modality / "dataset.json") is ct
    assert overlays.dataset_is_ct(None) is None


def test_the_ct_window_comes_from_dataset_json(tmp_path):
    write_case(tmp_path, "case_a", *cube_case())
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "dataset.json").write_text(json.dumps(
        {"name": "x", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "a"}, "training": [],
         "numTraining": 0, "tensorImageSize": "3D"}))
    seen = []
    original = overlays.overlay_figure
    overlays.overlay_figure = lambda overlay: seen.append(overlay.window) or original(overlay)
    try:
        evaluate_folders(tmp_path / "ref", tmp_path / "pred", out_dir=tmp_path / "out", num_processes=1,
                         plots=PlotOptions(tmp_path / "images"), dataset_json=tmp_path / "task" / "dataset.json")
        evaluate_folders(tmp_path / "ref", tmp_path / "pred", out_dir=tmp_path / "out", num_processes=1,
                         plots=PlotOptions(tmp_path / "images"), labels=[1])  # no dataset.json: HU values say CT
    finally:
        overlays.overlay_figure = original
    assert seen == [(-1000.0, 1000.0), (-160.0, 240.0)]


def test_cli_option_errors(tmp_path, capsys):
    for i, case in enumerate(("case_a",)):
        write_case(tmp_path, case, *cube_case(i))
    args = ["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o", str(tmp_path / "out")]
    assert evaluate_main([*args, "-img", str(tmp_path / "images")]) == 2
    assert "error: -img is only used to draw the plots: add --plots" in capsys.readouterr().err
    assert evaluate_main([*args, "--plots", "-img", str(tmp_path / "nowhere")]) == 2
    assert f"error: {tmp_path / 'nowhere'}: image folder (-img) not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape", [(20, 40, 50), (120, 200, 201)])  # the second is searched in 2x2x2 blocks
def test_largest_disagreement_centre_and_size(shape):
    from unetr_pp.evaluation.views import largest_component_center

    mask = np.zeros(shape, bool)
    mask[2:5, 3:9, 4:10] = True  # 108 voxels
    mask[10:17, 20:31, 30:41] = True  # 847 voxels: the largest, centroid (13, 25, 35)
    mask[10, 2, 40] = True
    center, voxels = largest_component_center(mask)
    assert voxels == 847
    assert center == pytest.approx((13, 25, 35), abs=1 if shape[0] > 100 else 0)
    assert largest_component_center(np.zeros(shape, bool)) is None
