"""Sliding window: Gaussian map, window placement, blending vs direct forward and MONAI, padding, TTA, ensembling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data.utils import compute_importance_map
from monai.inferers import sliding_window_inference
from torch import nn

from unetr_pp.inference import sliding_window as sw
from unetr_pp.inference.sliding_window import (
    SlidingWindowSettings,
    gaussian_importance_map,
    predict_probabilities,
    sliding_window_logits,
    window_starts,
)
from unetr_pp.utilities.errors import UnetrPPError


def pointwise_net(in_ch: int = 2, out_ch: int = 3, seed: int = 0) -> nn.Module:
    """Translation- and mirror-equivariant: 1x1x1 convs only."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(in_ch, 8, 1), nn.Tanh(), nn.Conv3d(8, out_ch, 1)).eval()


def conv_net(in_ch: int = 1, out_ch: int = 3, seed: int = 0) -> nn.Module:
    """Zero-padded 3x3x3 conv stack: neither mirror-equivariant nor window-independent near borders."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(in_ch, 4, 3, padding=1), nn.Tanh(), nn.Conv3d(4, out_ch, 3, padding=1)).eval()


def volume(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def direct(net: nn.Module, data: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return net(torch.from_numpy(data)[None])[0]


def test_gaussian_map_centre_sigma_symmetry_and_monai():
    g = gaussian_importance_map((9, 15, 17))
    assert g.shape == (9, 15, 17) and g.dtype == np.float32
    assert g[4, :, 8].max() == pytest.approx(1.0, abs=1e-6)  # odd axes peak at the middle voxel
    assert np.unravel_index(g.argmax(), g.shape)[0] == 4
    for axis in range(3):
        np.testing.assert_allclose(g, np.flip(g, axis), rtol=1e-6)
    # along x (17 voxels, sigma 17/8) one voxel away from the centre: exp(-1 / (2 sigma^2)) relative to the centre
    sigma = 17 / 8
    assert g[4, 7, 9] / g[4, 7, 8] == pytest.approx(np.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert g.min() > 0
    ref = compute_importance_map((9, 15, 17), mode="gaussian", sigma_scale=0.125).numpy()
    keep = ref > 1.0001e-3  # MONAI clamps its minimum at 1e-3, we keep the true (non-zero) values
    np.testing.assert_allclose(g[keep], ref[keep] / ref.max(), rtol=1e-5)
    assert keep.sum() > g.size // 3


def test_gaussian_map_replaces_underflowed_zeros_by_smallest_value():
    g = gaussian_importance_map((3, 3, 64), sigma_scale=0.01)
    assert g.min() > 0
    assert g.min() == np.unique(g)[0] and (g == g.min()).sum() > 1


def test_window_starts_spread_evenly():
    assert window_starts((10, 8, 11), (4, 8, 4), 0.5) == [[0, 2, 4, 6], [0], [0, 2, 4, 5, 7]]
    assert window_starts((20,), (8,), 1.0) == [[0, 6, 12]]
    with pytest.raises(UnetrPPError, match="smaller than the patch"):
        window_starts((3,), (4,), 0.5)


def test_pointwise_network_equals_whole_volume_forward():
    net = pointwise_net()
    data = volume((2, 13, 18, 21))
    settings = SlidingWindowSettings((8, 8, 8), step_size=0.5, sw_batch_size=3, mirror_axes=())
    logits = sliding_window_logits(net, data, settings)
    assert logits.shape == (3, 13, 18, 21) and logits.dtype == torch.float32
    torch.testing.assert_close(logits, direct(net, data), rtol=1e-5, atol=1e-5)


def test_blending_matches_monai_with_the_same_weights():
    net = conv_net()
    data = volume((1, 12, 16, 16), seed=1)
    settings = SlidingWindowSettings((8, 8, 8), step_size=0.5, sw_batch_size=2, mirror_axes=())
    ours = sliding_window_logits(net, data, settings)
    weights = torch.from_numpy(np.array(gaussian_importance_map((8, 8, 8))))
    with torch.no_grad():
        ref = sliding_window_inference(torch.from_numpy(data)[None], (8, 8, 8), 2, net, overlap=0.5,
                                       mode="gaussian", roi_weight_map=weights)[0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # the border effects of zero padding make windows disagree, so this is a real blending check
    assert (ours - direct(net, data)).abs().max() > 1e-3


def test_image_smaller_than_patch_is_padded_and_cropped_back():
    net = pointwise_net()
    data = volume((2, 5, 11, 7), seed=2)
    logits = sliding_window_logits(net, data, SlidingWindowSettings((8, 8, 8), mirror_axes=()))
    assert logits.shape == (3, 5, 11, 7)
    torch.testing.assert_close(logits, direct(net, data), rtol=1e-5, atol=1e-5)


def test_mirror_tta_averages_flipped_predictions():
    net = conv_net(seed=3)
    data = volume((1, 8, 8, 8), seed=3)
    tta = sliding_window_logits(net, data, SlidingWindowSettings((8, 8, 8), mirror_axes=(0, 1, 2)))
    x = torch.from_numpy(data)[None]
    expected = []
    with torch.no_grad():
        for dims in [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]:
            expected.append(torch.flip(net(torch.flip(x, dims)), dims)[0])
    torch.testing.assert_close(tta, torch.stack(expected).mean(0), rtol=1e-5, atol=1e-5)
    plain = sliding_window_logits(net, data, SlidingWindowSettings((8, 8, 8), mirror_axes=()))
    assert (tta - plain).abs().max() > 1e-3


def test_mirror_equivariant_network_is_unchanged_by_tta():
    net = pointwise_net(in_ch=1)
    data = volume((1, 10, 12, 9), seed=4)
    tta = sliding_window_logits(net, data, SlidingWindowSettings((8, 8, 8), mirror_axes=(1, 2)))
    torch.testing.assert_close(tta, direct(net, data), rtol=1e-5, atol=1e-5)


def test_ensemble_softmaxes_mean_logits_and_regions_use_sigmoid():
    nets = [pointwise_net(seed=5), pointwise_net(seed=6)]
    data = volume((2, 9, 9, 9), seed=5)
    settings = SlidingWindowSettings((8, 8, 8), mirror_axes=())
    probs = predict_probabilities(nets, data, settings)
    assert probs.shape == (3, 9, 9, 9) and probs.dtype == np.float32
    expected = torch.softmax((direct(nets[0], data) + direct(nets[1], data)) / 2, 0).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
    regions = predict_probabilities(nets[:1], data, settings, regions=True, dtype=np.float16)
    assert regions.dtype == np.float16
    np.testing.assert_allclose(regions, torch.sigmoid(direct(nets[0], data)).numpy(), atol=1e-3)


def test_forced_cpu_accumulation_gives_the_same_result():
    net = conv_net(seed=7)
    data = volume((1, 12, 10, 10), seed=7)
    results = [sliding_window_logits(net, data, SlidingWindowSettings((8, 8, 8), accumulate=a, mirror_axes=(0,)))
               for a in ("cpu", "device", "auto")]
    for other in results[1:]:
        torch.testing.assert_close(results[0], other)
    assert results[0].device.type == "cpu"


def test_auto_accumulation_falls_back_to_cpu_when_device_memory_is_short(monkeypatch):
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 10**9))
    assert sw._accumulation_device(cuda, 10**6, "auto").type == "cpu"
    assert sw._accumulation_device(cuda, 10**6, "device") == cuda
    assert sw._accumulation_device(cuda, 10, "auto") == cuda
    assert sw._accumulation_device(cuda, 10, "cpu").type == "cpu"


@pytest.mark.parametrize("kwargs, message", [
    ({"step_size": 0.0}, "step size"),
    ({"step_size": 1.5}, "step size"),
    ({"sw_batch_size": 0}, "sw_batch_size"),
    ({"mirror_axes": (3,)}, "mirror axes"),
    ({"accumulate": "gpu"}, "accumulate"),
])
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(UnetrPPError, match=message):
        SlidingWindowSettings((8, 8, 8), **kwargs)


def test_non_4d_input_is_rejected():
    with pytest.raises(UnetrPPError, match=r"\(C, z, y, x\)"):
        sliding_window_logits(pointwise_net(), volume((8, 8, 8)), SlidingWindowSettings((8, 8, 8)))


class CallRecorder(nn.Module):
    """conv_net that records, per call, its thread, whether inference mode is on and the batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.net = conv_net()
        self.calls: list[tuple[str, bool, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import threading
        self.calls.append((threading.current_thread().name, torch.is_inference_mode_enabled(), x.shape[0]))
        return self.net(x)


def test_windows_run_in_batches_of_sw_batch_size_in_the_calling_thread():
    import threading

    recorder = CallRecorder()
    sliding_window_logits(recorder, volume((1, 8, 16, 16)), SlidingWindowSettings((8, 8, 8), 0.5, 2, (2,)))
    caller = threading.current_thread().name
    # 9 windows in batches of 2, 2 + 2 + 2 + 2 + 1, each batch plain and mirrored along x
    assert recorder.calls == [(caller, True, n) for n in (2, 2, 2, 2, 2, 2, 2, 2, 1, 1)]
