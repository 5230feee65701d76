"""End to end with the real preprocessing: raw rotated, anisotropic, croppable images -> labels in their geometry.

The "network" reads the label from the intensity (class k where the image is near 10k + 1), so a correct
pipeline (crop, transpose, resample, sliding window, resample back, uncrop, transpose back, write)
returns the label the image was drawn from, up to interpolation at label borders.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetr_pp.cli.predict import main
from unetr_pp.inference import models
from unetr_pp.io import Geometry, read_image, write_image
from unetr_pp.utilities.files import save_json

TASK = "Task003_Intensity"
TRAINER = "intensity_trainer"
CENTRES = (1.0, 11.0, 21.0)
PLANS = {
    "plans_identifier": "unetr_pp_Plansv2.1",
    "dataset_name": TASK,
    "channel_names": {"0": "MR"},
    "labels": {"0": "background", "1": "a", "2": "b"},
    "regions": None,
    "regions_class_order": None,
    "transpose_forward": [1, 0, 2],
    "transpose_backward": [1, 0, 2],
    "foreground_intensity_properties_per_channel": {"0": {"mean": 10.0, "std": 5.0, "median": 10.0, "min": 0.0,
                                                          "max": 21.0, "percentile_00_5": 0.0,
                                                          "percentile_99_5": 21.0}},
    "configurations": {"3d_fullres": {
        "data_identifier": "unetr_pp_Plansv2.1_3d_fullres", "spacing": [3.0, 0.6, 0.6], "patch_size": [8, 16, 16],
        "batch_size": 2, "median_shape": [10, 30, 24], "normalization_schemes": ["NoNormalization"],
        "use_mask_for_norm": [False],
        "resampling": {"order_data": 3, "order_seg": 1, "order_z": 0, "separate_z_anisotropy_threshold": 3.0},
        "pool_op_kernel_sizes": [[1, 2, 2]], "conv_kernel_sizes": [[1, 3, 3], [3, 3, 3]], "num_classes": 3,
        "num_input_channels": 1, "network_kwargs": {},
    }},
}


class IntensityToLabel(nn.Module):
    """Logits -(x - centre_k)^2: class k where the intensity is nearest 10k + 1; no weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-(x - c) ** 2 for c in CENTRES], dim=1)


def make_raw_case(folder, case_id: str, seed: int) -> tuple[np.ndarray, Geometry]:
    """Image (z 24, y 12, x 20), spacing (0.8, 3.0, 0.9), rotated; zero outside a box so cropping applies."""
    rng = np.random.default_rng(seed)
    label = np.zeros((24, 12, 20), np.uint8)
    z, y, x = np.indices(label.shape)
    label[((z - 12) / 7.0) ** 2 + ((y - 6) / 3.5) ** 2 + ((x - 10) / 6.0) ** 2 <= 1] = 1
    label[14:19, 5:9, 10 + seed:16 + seed] = 2
    image = np.zeros(label.shape, np.float32)
    image[3:22, 1:11, 2:18] = 1.0 + 10.0 * label[3:22, 1:11, 2:18] + rng.uniform(-0.5, 0.5, (19, 10, 16))
    label[image == 0] = 0
    a = np.deg2rad(25)
    direction = (np.cos(a), 0.0, -np.sin(a), 0.0, 1.0, 0.0, np.sin(a), 0.0, np.cos(a))
    geometry = Geometry((0.8, 3.0, 0.9), (4.0, -20.0, 11.5), direction)
    write_image(image, geometry, folder / f"{case_id}_0000.nii.gz")
    return label, geometry


def _intensity_fold(env_folders, monkeypatch) -> None:
    """A fold_0 of the intensity "network" (model_best + sidecar), the registry patched to build it."""
    monkeypatch.setattr(models, "build_network", lambda name, plans_config: IntensityToLabel())
    fold = env_folders["RESULTS_FOLDER"] / "unetr_pp" / "3d_fullres" / TASK / f"{TRAINER}__unetr_pp_Plansv2.1"
    (fold / "fold_0").mkdir(parents=True)
    torch.save({"epoch": 1, "state_dict": {}}, fold / "fold_0" / "model_best.model")
    save_json({"trainer": TRAINER, "network": "intensity", "configuration": "3d_fullres", "plans": PLANS},
              fold / "fold_0" / "model_best.model.json")


def test_raw_cases_come_back_in_their_geometry(tmp_path, env_folders, monkeypatch, capsys):
    _intensity_fold(env_folders, monkeypatch)
    (tmp_path / "in").mkdir()
    cases = {f"case_{i}": make_raw_case(tmp_path / "in", f"case_{i}", i) for i in range(2)}
    code = main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-t", "3", "-tr", TRAINER, "-f", "0",
                 "-chk", "model_best", "-npp", "0", "-nps", "1", "--overlap", "0.5", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    for case_id, (label, geometry) in cases.items():
        written, written_geometry = read_image(tmp_path / "out" / f"{case_id}.nii.gz")
        assert written.shape == label.shape
        assert written_geometry.mismatch(geometry, tol=1e-6) == []
        assert (written == label).mean() >= 0.99
        for k in (1, 2):
            a, b = written == k, label == k
            assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9


def test_preview_draws_each_prediction_and_never_fails_the_run(tmp_path, env_folders, monkeypatch, capsys):
    """--preview: <OUT>/preview/<case>.png per case; a preview that cannot be drawn is one warning, exit code 0."""
    from PIL import Image

    from unetr_pp.evaluation import previews

    _intensity_fold(env_folders, monkeypatch)
    (tmp_path / "in").mkdir()
    for i in range(2):
        make_raw_case(tmp_path / "in", f"case_{i}", i)
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-t", "3", "-tr", TRAINER, "-f", "0",
            "-chk", "model_best", "-npp", "0", "-nps", "0", "--disable_tta", "--device", "cpu", "--preview"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert f"previews: {tmp_path / 'out' / 'preview'}/<case_id>.png" in out.out and "warning" not in out.err
    for i in range(2):
        with Image.open(tmp_path / "out" / "preview" / f"case_{i}.png") as picture:
            assert picture.size[0] > 500 and picture.info["dpi"] == pytest.approx((100, 100), abs=0.1)

    def broken(case, *args):
        if case == "case_1":
            raise ValueError("cannot draw")
        return original(case, *args)

    original = previews.preview_figure
    monkeypatch.setattr(previews, "preview_figure", broken)
    assert main([*args, "--overwrite"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert warnings == ["warning: 1 of 2 preview(s) (predictions unaffected) not drawn (case_1: ValueError: "
                        "cannot draw)"]


def test_preview_goes_through_the_predicted_foreground():
    from unetr_pp.evaluation.overlays import preview_figure
    from unetr_pp.evaluation.protocols import as_targets

    prediction = np.zeros((10, 30, 40), np.uint8)
    prediction[2:4, 20:26, 30:36] = 2  # centroid (2.5, 22.5, 32.5), rounded half to even
    geometry = Geometry((2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    targets = as_targets({"a": 1, "b": 2})
    figure = preview_figure("c", prediction, geometry, targets, None, None)
    titles = [t.get_text() for t in figure.texts]
    assert "predicted foreground centre at voxel (z, y, x) = (2, 22, 32)" in titles
    empty = preview_figure("c", np.zeros_like(prediction), geometry, targets, None, None)
    assert "empty prediction: volume centre at voxel (z, y, x) = (5, 15, 20)" in [t.get_text() for t in empty.texts]
    assert "no image: contours on a gray background" in " ".join(t.get_text() for t in empty.texts)
