"""Final-validation memory: prediction + export of one case hold the logits and little else (issue 14), and the
lean steps equal the plain torch/numpy they replace."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unetr_pp.inference import export, sliding_window
from unetr_pp.inference.export import probabilities_to_labels
from unetr_pp.inference.sliding_window import probabilities_in_place

SHAPE = (96, 224, 224)
CHANNEL = 4 * int(np.prod(SHAPE))  # one float32 channel volume: 19 MB
ALLOWANCE = 8 * 2**20  # window batches (one window at a time), the written file
# A warm-up case (imports, kernels), then the measured case: peak RSS above the RSS before it, data already loaded.
_PROGRAM = """
import sys
import numpy as np, torch
from unetr_pp.inference.predictor import PredictionOptions, export_case, predict_preprocessed_case
from unetr_pp.io import Geometry
from plans_factory import config_json, make_plans

regions, out = sys.argv[1] == "regions", sys.argv[2]
k = 3 if regions else 4
labels = {"0": "background", "1": "edema", "2": "core", "3": "enhancing"}
top = {"regions": {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}, "regions_class_order": [1, 2, 3]} if regions else {}
plans = make_plans({"3d_fullres": config_json(num_input_channels=4, num_classes=k, patch_size=[32, 64, 64])},
                   labels=labels, **top)

def network(x):
    return x[:, :k] * 2.0

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

def run(shape, name):
    data = np.random.default_rng(0).normal(size=(4,) + shape).astype(np.float32)
    props = {"geometry": Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)).to_json(),
             "original_shape": list(shape), "bbox": [[0, s] for s in shape], "shape_after_cropping": list(shape),
             "original_spacing": [1.0] * 3, "transpose_forward": [0, 1, 2], "spacing_after_resampling": [1.0] * 3}
    baseline = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    options = PredictionOptions(mirror_axes=(), sw_batch_size=1)
    probabilities = predict_preprocessed_case([network], data, plans, "3d_fullres", options)
    export_case(probabilities, props, plans, "3d_fullres", f"{out}/{name}.nii.gz")
    del probabilities
    return status("VmHWM") - baseline

run((32, 64, 64), "warm")
print(run(%s, "case"))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resets VmHWM through /proc")
@pytest.mark.parametrize("mode, outputs", [("regions", 3), ("labels", 4)])
def test_peak_rss_of_predicting_and_exporting_a_case(tmp_path, mode, outputs):
    # big blocks mapped and unmapped one by one: the resident peak is the live buffers, not heap reuse
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="1048576")
    out = subprocess.run([sys.executable, "-c", _PROGRAM % (SHAPE,), mode, str(tmp_path)], env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    peak = int(out.stdout.split()[-1])
    # K blended logits (turned into probabilities in place) and the Gaussian weights;
    # before: a second K-volume buffer for the probabilities, then an int64 label volume (2 channel volumes)
    assert peak < (outputs + 1.5) * CHANNEL + ALLOWANCE, f"peak {peak / CHANNEL:.2f} channel volumes"


def test_probabilities_in_place_equal_torch(monkeypatch):
    monkeypatch.setattr(sliding_window, "NONLINEARITY_SLAB_VALUES", 250)  # slabs of 2 planes (5 x 2 x 6 x 4 values)
    logits = torch.randn(5, 7, 6, 4, generator=torch.Generator().manual_seed(0)) * 8
    softmax = probabilities_in_place(logits.clone(), regions=False)
    torch.testing.assert_close(softmax, torch.softmax(logits, dim=0), rtol=0, atol=0)
    sigmoid = probabilities_in_place(logits.clone(), regions=True)
    torch.testing.assert_close(sigmoid, torch.sigmoid(logits), rtol=0, atol=0)


def test_labels_slab_by_slab_equal_argmax(monkeypatch):
    monkeypatch.setattr(export, "LABEL_SLAB_VOXELS", 30)
    probs = np.random.default_rng(0).random((4, 9, 5, 7)).astype(np.float32)
    labels = probabilities_to_labels(probs, None)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, probs.argmax(0))
    many = np.random.default_rng(1).random((300, 3, 4, 5)).astype(np.float32)
    many[299, 0, 0, 0] = 2.0
    wide = probabilities_to_labels(many, None)
    assert wide.dtype == np.uint16 and wide[0, 0, 0] == 299
    np.testing.assert_array_equal(wide, many.argmax(0))
