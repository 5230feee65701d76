"""Network zoo: every architecture through the registry at tiny sizes, the contract, registry errors, MONAI parity."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from monai.networks.nets import UNETR as MonaiUNETR
from monai.networks.nets import SwinUNETR as MonaiSwinUNETR

from unetr_pp.networks import NETWORK_NAMES, build_network
from unetr_pp.utilities.errors import UnetrPPError

SMALL_KWARGS = {
    "unetr_pp": {"dims": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "stem_stride": [2, 2, 2]},
    "unetr": {"hidden_size": 48, "mlp_dim": 96, "num_heads": 4, "feature_size": 8},
    "swin_unetr": {"feature_size": 12, "depths": [1, 1, 1, 1]},
    "uxnet": {"dims": [8, 16, 32, 64], "hidden_size": 64},
    "repuxnet": {"dims": [8, 16, 32, 64], "hidden_size": 64, "kernel_size": 7},
    "deformuxnet": {"dims": [8, 16, 32, 64], "hidden_size": 64},
    "nnunet": {"base_features": 8},
    "nnformer": {"embed_dim": 8, "num_heads": [1, 2, 2, 4]},
    "transbts": {"base_channels": 8, "embedding_dim": 64, "num_heads": 4, "num_layers": 1, "hidden_dim": 64},
    "unest_base": {"embed_dims": [16, 32, 64], "num_heads": [1, 2, 2], "depths": [1, 1, 1]},
    "unest_large": {"embed_dims": [16, 32, 64], "num_heads": [1, 2, 2], "depths": [1, 1, 2]},
    "uxnet_k21": {"dims": [8, 16, 32, 64], "hidden_size": 64, "depths": [1, 1, 1, 1]},
}
PATCH = {"swin_unetr": [32, 64, 64], "unest_base": [32, 32, 64], "unest_large": [32, 32, 64]}
# expected deep-supervision scales at the tiny configuration below
DS_SCALES = {
    "unetr_pp": [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)],
    "nnunet": [(1.0, 1.0, 1.0), (1.0, 0.5, 0.5)],
    "nnformer": [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)],
}


def tiny_config(name: str) -> dict:
    """A 2-channel, 3-class plans configuration at 32^3 (SwinUNETR 32x64x64, UNesT 32x32x64), anisotropic nnU-Net pooling."""
    return {"patch_size": PATCH.get(name, [32, 32, 32]), "num_input_channels": 2, "num_classes": 3,
            "pool_op_kernel_sizes": [[1, 2, 2], [2, 2, 2]], "conv_kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
            "network_kwargs": {name: dict(SMALL_KWARGS[name])}}


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_forward_backward_and_contract(name):
    torch.manual_seed(0)
    config = tiny_config(name)
    net = build_network(name, config, deep_supervision=True)
    patch = tuple(config["patch_size"])
    x = torch.randn(1, 2, *patch)
    net.train()
    outputs = net(x)
    scales = DS_SCALES.get(name, [(1.0, 1.0, 1.0)])
    assert net.deep_supervision_scales == scales
    assert isinstance(outputs, list) and len(outputs) == len(scales)
    for out, scale in zip(outputs, scales):
        assert out.shape == (1, 3, *(round(p * s) for p, s in zip(patch, scale)))
    sum(o.square().mean() for o in outputs).backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    net.deep_supervision = False
    assert isinstance(net(x), torch.Tensor)
    net.deep_supervision = True
    net.eval()
    with torch.no_grad():
        out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, *patch) and torch.isfinite(out).all()


def test_unknown_network_lists_valid_names():
    with pytest.raises(UnetrPPError) as err:
        build_network("vnet", tiny_config("uxnet"), True)
    assert "vnet" in str(err.value) and all(n in str(err.value) for n in NETWORK_NAMES)


def test_network_kwargs_reach_the_network_and_unknown_ones_are_rejected():
    config = tiny_config("uxnet")
    small = sum(p.numel() for p in build_network("uxnet", config, False).parameters())
    config["network_kwargs"]["uxnet"]["hidden_size"] = 128
    assert sum(p.numel() for p in build_network("uxnet", config, False).parameters()) > small
    config["network_kwargs"]["uxnet"]["heads"] = 3
    with pytest.raises(UnetrPPError, match=r"3D UX-Net: unknown network_kwargs \['heads'\]"):
        build_network("uxnet", config, False)


def test_missing_plans_key_is_named():
    config = tiny_config("nnunet")
    del config["conv_kernel_sizes"]
    with pytest.raises(UnetrPPError, match="nnU-Net UNet: the plans configuration lacks 'conv_kernel_sizes'"):
        build_network("nnunet", config, False)


@pytest.mark.parametrize("name, patch, divisor", [
    ("unetr", [40, 32, 32], "[16, 16, 16]"),
    ("swin_unetr", [32, 48, 64], "[32, 32, 32]"),
    ("uxnet", [32, 32, 24], "[16, 16, 16]"),
    ("repuxnet", [8, 32, 32], "[16, 16, 16]"),
    ("deformuxnet", [32, 20, 32], "[16, 16, 16]"),
    ("nnunet", [32, 32, 30], "[2, 4, 4]"),
    ("unetr_pp", [32, 32, 40], "[16, 16, 16]"),
])
def test_patch_the_network_cannot_take(name, patch, divisor):
    config = tiny_config(name)
    config["patch_size"] = patch
    with torch.device("meta"), pytest.raises(UnetrPPError) as err:
        build_network(name, config, True)
    message = str(err.value)
    assert str(patch) in message and divisor in message and "not divisible" in message


def test_swin_unetr_rejects_a_one_voxel_bottleneck():
    config = tiny_config("swin_unetr")
    config["patch_size"] = [32, 32, 32]
    with torch.device("meta"), pytest.raises(UnetrPPError, match=r"SwinUNETR: patch size \[32, 32, 32\] leaves a 1x1x1"):
        build_network("swin_unetr", config, True)


def _same_weights_same_output(ours: torch.nn.Module, monai_net: torch.nn.Module, shape) -> None:
    assert list(ours.state_dict()) == list(monai_net.state_dict())
    monai_net.load_state_dict(ours.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in monai_net.parameters())
    x = torch.randn(shape)
    ours.eval(), monai_net.eval()
    with torch.no_grad():
        assert torch.equal(ours(x), monai_net(x))


def test_unetr_equals_monai():
    torch.manual_seed(1)
    ours = build_network("unetr", tiny_config("unetr"), True)
    monai_net = MonaiUNETR(2, 3, (32, 32, 32), feature_size=8, hidden_size=48, mlp_dim=96, num_heads=4,
                           proj_type="perceptron", norm_name="instance", res_block=True)
    _same_weights_same_output(ours, monai_net, (1, 2, 32, 32, 32))


def test_swin_unetr_equals_monai():
    torch.manual_seed(2)
    ours = build_network("swin_unetr", tiny_config("swin_unetr"), True)
    monai_net = MonaiSwinUNETR(2, 3, feature_size=12, depths=(1, 1, 1, 1))
    _same_weights_same_output(ours, monai_net, (1, 2, 32, 64, 64))


def test_package_import_is_lazy():
    code = ("import sys, unetr_pp.networks as n\n"
            "assert not any(m in sys.modules for m in ('unetr_pp.networks.official', 'unetr_pp.networks.uxnet',"
            " 'monai'))\n"
            "f = n.load_official_unetr_pp\n"
            "assert f.__module__ == 'unetr_pp.networks.official'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
