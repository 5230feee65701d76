"""nnU-Net generic UNet: topology from the plans (anisotropic), features, deep supervision, reference parameter count."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from unetr_pp.networks import build_network
from unetr_pp.networks.complexity import pooling_spacing
from unetr_pp.networks.nnunet import GenericUNet, stage_features
from unetr_pp.planning.topology import conv_kernels_for_pooling, plans_topology
from unetr_pp.utilities.errors import UnetrPPError

# an ACDC-like anisotropic configuration: z pooled only from the third pooling on
ANISO = {"patch_size": [8, 32, 48], "num_input_channels": 2, "num_classes": 4,
         "pool_op_kernel_sizes": [[1, 2, 2], [1, 2, 2], [2, 2, 2]],
         "conv_kernel_sizes": [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]]}


def _convs(module: nn.Module, kind=nn.Conv3d) -> list[nn.Module]:
    return [m for m in module.modules() if type(m) is kind]


def test_topology_from_anisotropic_plans():
    net = build_network("nnunet", ANISO, True)
    first_convs = [stage[0][0] for stage in net.encoder]
    assert [c.kernel_size for c in first_convs] == [(1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)]
    assert [c.padding for c in first_convs] == [(0, 1, 1), (0, 1, 1), (1, 1, 1), (1, 1, 1)]
    assert [c.stride for c in first_convs] == [(1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2)]
    assert [c.out_channels for c in first_convs] == [32, 64, 128, 256]
    ups = _convs(net, nn.ConvTranspose3d)
    assert [u.stride for u in ups] == [(2, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert all(isinstance(stage[0][1], nn.InstanceNorm3d) and isinstance(stage[0][2], nn.LeakyReLU)
               for stage in net.encoder)
    assert net.deep_supervision_scales == [(1.0, 1.0, 1.0), (1.0, 0.5, 0.5), (1.0, 0.25, 0.25)]
    x = torch.randn(1, 2, 8, 32, 48)
    outs = net.train()(x)
    assert [tuple(o.shape) for o in outs] == [(1, 4, 8, 32, 48), (1, 4, 8, 16, 24), (1, 4, 8, 8, 12)]
    with torch.no_grad():
        assert net.eval()(x).shape == (1, 4, 8, 32, 48)


def test_features_are_capped_at_320():
    assert stage_features(7) == [32, 64, 128, 256, 320, 320, 320]
    pools = [[2, 2, 2]] * 6
    with torch.device("meta"):
        net = GenericUNet(1, 2, [64, 64, 64], pools, _kernels(pools), deep_supervision=False)
    assert [stage[1][0].out_channels for stage in net.encoder] == [32, 64, 128, 256, 320, 320, 320]


def test_parameter_count_of_the_ux_net_table_configuration():
    """6 stages (5 poolings of 2) at 96^3, 14 classes: 31.2 M (3D UX-Net tables), counted by hand here."""
    pools = [[2, 2, 2]] * 5
    with torch.device("meta"):
        net = GenericUNet(1, 14, [96, 96, 96], pools, _kernels(pools), deep_supervision=True)
    feats = [32, 64, 128, 256, 320, 320]

    def conv_block(cin, cout):  # conv k3 with bias + instance norm affine
        return cin * cout * 27 + cout + 2 * cout

    expected = sum(conv_block(cin, f) + conv_block(f, f) for cin, f in zip([1] + feats[:-1], feats))
    expected += sum(feats[i + 1] * feats[i] * 8 + conv_block(2 * feats[i], feats[i]) + conv_block(feats[i], feats[i])
                    + feats[i] * 14 for i in range(5))
    assert sum(p.numel() for p in net.parameters()) == expected == 31_204_384


def _kernels(pools):
    return [list(k) for k in conv_kernels_for_pooling(pooling_spacing(pools), pools)]


def test_default_topology_rules():
    assert plans_topology([96, 96, 96]) == ([[2, 2, 2]] * 4, [[3, 3, 3]] * 5)
    pools, convs = plans_topology([16, 160, 160], spacing=[10.0, 1.5, 1.5])
    assert pools == [[1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert convs[:3] == [[1, 3, 3], [1, 3, 3], [3, 3, 3]]
    aniso_convs = conv_kernels_for_pooling(pooling_spacing(ANISO["pool_op_kernel_sizes"]), ANISO["pool_op_kernel_sizes"])
    assert [list(k) for k in aniso_convs] == ANISO["conv_kernel_sizes"]


def test_kernel_and_pool_lists_must_agree():
    bad = dict(ANISO, conv_kernel_sizes=ANISO["conv_kernel_sizes"][:-1])
    with pytest.raises(UnetrPPError, match="one 3-axis entry per stage"):
        build_network("nnunet", bad, True)
