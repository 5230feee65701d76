"""3D RepUX-Net (BFM training, reparameterisation) and 3D DeformUX-Net (deformable depthwise conv) against references."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unetr_pp.networks import build_network
from unetr_pp.networks.deformuxnet import DeformableDepthwiseConv, deform_depthwise_conv3d
from unetr_pp.networks.repuxnet import BFMDepthwiseConv, RepUXBlock, fusion_mask, reparameterize


def small_config(name: str, **kwargs) -> dict:
    return {"patch_size": [16, 32, 16], "num_input_channels": 1, "num_classes": 2,
            "network_kwargs": {name: {"dims": [4, 8, 8, 16], "hidden_size": 16, **kwargs}}}


def test_fusion_mask_values():
    bfm = fusion_mask(21)
    assert bfm.shape == (21, 21, 21)
    assert bfm[10, 10, 10] == 1.0
    assert bfm[10, 10, 11] == pytest.approx(0.5)
    assert bfm[0, 0, 0].item() == pytest.approx(1 / (10 * math.sqrt(3) + 1))
    assert fusion_mask(3, alpha=2.0)[0, 1, 1].item() == pytest.approx(2 / 3)


def test_repux_kernel_trains_and_mask_does_not_compound():
    torch.manual_seed(0)
    conv = BFMDepthwiseConv(2, kernel_size=5)
    assert "bfm" not in conv.state_dict() and set(conv.state_dict()) == {"weight", "bias"}
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    x = torch.randn(1, 2, 6, 7, 8)
    first = conv(x)
    assert torch.equal(first, conv(x))  # the mask is applied once per forward, never folded into W
    reference = F.conv3d(x, conv.weight * fusion_mask(5), conv.bias, padding=2, groups=2)
    assert torch.allclose(first, reference, atol=1e-6)
    w_before = conv.weight.detach().clone()
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)
    first.square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(conv.weight, w_before)
    after = F.conv3d(x, conv.weight * fusion_mask(5), conv.bias, padding=2, groups=2)
    assert torch.allclose(conv(x), after, atol=1e-6)


def test_repux_network_state_dict_has_no_mask_and_kernels_get_gradients():
    net = build_network("repuxnet", small_config("repuxnet", kernel_size=5), False)
    assert not any("bfm" in k for k in net.state_dict())
    net.train()
    net(torch.randn(2, 1, 16, 32, 16)).mean().backward()
    kernels = [m.weight for m in net.modules() if isinstance(m, BFMDepthwiseConv)]
    assert len(kernels) == 8 and all(k.grad is not None and k.grad.abs().sum() > 0 for k in kernels)


@pytest.mark.parametrize("fold_bn", [True, False])
def test_repux_reparameterize_keeps_eval_outputs(fold_bn):
    torch.manual_seed(1)
    net = build_network("repuxnet", small_config("repuxnet", kernel_size=7), False)
    for module in net.modules():
        if isinstance(module, RepUXBlock):
            module.norm.running_mean.uniform_(-0.5, 0.5)
            module.norm.running_var.uniform_(0.5, 2.0)
            module.norm.weight.data.uniform_(0.5, 1.5)
            module.norm.bias.data.uniform_(-0.2, 0.2)
            module.residual.gamma.data.fill_(0.5)
    net.eval()
    x = torch.randn(1, 1, 16, 32, 16)
    with torch.no_grad():
        before = net(x)
        reparameterize(net, fold_bn=fold_bn)
        after = net(x)
    assert not any(isinstance(m, BFMDepthwiseConv) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules()) != fold_bn
    assert (after - before).abs().max().item() <= 1e-5


def _dw_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.conv3d(x, weight, bias, padding=1, groups=x.shape[1])


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_deform_zero_offsets_equal_depthwise_conv(dtype, tol):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 4, 5, 6, dtype=dtype)
    weight = torch.randn(3, 1, 3, 3, 3, dtype=dtype)
    bias = torch.randn(3, dtype=dtype)
    offsets = torch.zeros(2, 81, 4, 5, 6, dtype=dtype)
    out = deform_depthwise_conv3d(x, weight, offsets, bias)
    assert (out - _dw_conv(x, weight, bias)).abs().max().item() <= tol


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_deform_one_voxel_offset_equals_shifted_conv(axis):
    torch.manual_seed(3)
    x = torch.randn(1, 2, 4, 5, 6, dtype=torch.float64)
    weight = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64)
    offsets = torch.zeros(1, 81, 4, 5, 6, dtype=torch.float64)
    offsets[:, axis::3] = 1.0  # every tap looks one voxel further along `axis`
    out = deform_depthwise_conv3d(x, weight, offsets)
    # tap t samples x[p + (t - 1) + 1]: a valid conv over x zero-padded by (0, 2) on `axis` and (1, 1) elsewhere
    pad = [1] * 6
    pad[2 * (2 - axis)], pad[2 * (2 - axis) + 1] = 0, 2
    expected = F.conv3d(F.pad(x, pad), weight, groups=2)
    assert (out - expected).abs().max().item() <= 1e-12


def test_deform_gradcheck_input_weight_offsets():
    torch.manual_seed(4)
    x = torch.randn(1, 2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    # non-integer offsets: trilinear sampling is not differentiable at whole-voxel positions
    offsets = (torch.rand(1, 81, 2, 3, 4, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(deform_depthwise_conv3d, (x, weight, offsets, bias), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


def test_deformable_module_starts_as_plain_depthwise_conv_and_offsets_learn():
    torch.manual_seed(5)
    conv = DeformableDepthwiseConv(3)
    x = torch.randn(1, 3, 4, 4, 4)
    out = conv(x)
    assert torch.allclose(out, _dw_conv(x, conv.weight, conv.bias), atol=1e-5)
    out.square().sum().backward()
    assert conv.offset.weight.grad is not None and conv.offset.weight.grad.abs().sum() > 0


def test_deformux_network_runs_on_non_cubic_patch():
    net = build_network("deformuxnet", small_config("deformuxnet"), True).train()
    out = net(torch.randn(1, 1, 16, 32, 16))
    assert isinstance(out, list) and out[0].shape == (1, 2, 16, 32, 16)
