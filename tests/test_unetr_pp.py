"""UNETR++: official layouts and outputs (probe weights), any patch size, the build contract."""
from __future__ import annotations

import json

import pytest
import torch

from unetr_pp.networks.official import OFFICIAL_CONFIGS, build_official_unetr_pp, official_plans_config
from unetr_pp.networks.unetr_pp import UNETRPP, VARIANTS, build, stem_stride_from_pooling
from unetr_pp.utilities.errors import UnetrPPError

from reference_probe import REFERENCE, probe_module

DATASETS = ["synapse", "acdc", "lung", "tumor"]


probe = probe_module()


def layout(dataset: str) -> dict:
    return json.loads((REFERENCE / f"unetr_pp_official_{dataset}.json").read_text())


def meta_official(dataset: str) -> UNETRPP:
    with torch.device("meta"):
        return build_official_unetr_pp(dataset)


def plans_config(patch, channels=1, classes=3, pools=((2, 2, 2),) * 5) -> dict:
    return {"patch_size": list(patch), "num_input_channels": channels, "num_classes": classes,
            "pool_op_kernel_sizes": [list(p) for p in pools]}


@pytest.mark.parametrize("dataset", DATASETS)
def test_state_dict_layout_equals_official(dataset):
    ref = layout(dataset)
    net = meta_official(dataset)
    ours = [[key, list(t.shape), str(t.dtype).removeprefix("torch.")] for key, t in net.state_dict().items()]
    assert ours == ref["state_dict"]
    assert sum(p.numel() for p in net.parameters()) == ref["num_params"] == OFFICIAL_CONFIGS[dataset].num_params


@pytest.mark.parametrize("dataset", DATASETS)
def test_official_config_data_matches_reference(dataset):
    ref, cfg = layout(dataset), OFFICIAL_CONFIGS[dataset]
    assert [1, cfg.in_channels, *cfg.patch_size] == ref["input_shape"]
    assert (cfg.in_channels, cfg.num_classes) == (ref["constructor"]["in_channels"], ref["constructor"]["out_channels"])
    assert list(cfg.stem_stride) == ref["architecture_facts"]["stem_conv"]["kernel_size"]
    assert stem_stride_from_pooling(cfg.pool_op_kernel_sizes) == cfg.stem_stride
    net = meta_official(dataset)
    assert net.tokens == ref["architecture_facts"]["encoder_stage_tokens"]
    net.eval()
    assert [list(s) for s in net.deep_supervision_scales] == [
        [o / i for o, i in zip(shape[2:], ref["input_shape"][2:])] for shape in ref["output_shapes"]["eval_do_ds_true"]]


def test_synapse_parameter_count():
    with torch.device("meta"):
        net = UNETRPP(1, 14, (64, 128, 128), (2, 4, 4), **VARIANTS["synapse"])
    assert sum(p.numel() for p in net.parameters()) == 42_952_850


def test_synapse_e_and_f_are_one_linear():
    ref = layout("synapse")
    net = UNETRPP(1, 2, (16, 32, 32), (2, 4, 4), **VARIANTS["synapse"])
    sd = net.state_dict()
    aliases = [k for k in sd if ".epa_block.F." in k]
    assert len(aliases) == 42 and len(ref["state_dict_keys_aliasing_another_parameter"]) == 42
    for key in aliases:
        assert sd[key].data_ptr() == sd[key.replace(".F.", ".E.")].data_ptr()
    param_names = {name for name, _ in net.named_parameters()}
    assert not param_names & set(aliases), "a shared E/F must count once among the parameters"
    # strict loading needs both names; both end up holding the same values
    with pytest.raises(RuntimeError, match="Missing key"):
        net.load_state_dict({k: v for k, v in sd.items() if k not in aliases}, strict=True)
    # as in the official module, the later key (F) wins when a file holds different E and F values
    prefix = "unetr_pp_encoder.stages.0.0.epa_block."
    net.load_state_dict({**sd, prefix + "E.weight": torch.full_like(sd[prefix + "E.weight"], 0.25),
                         prefix + "F.weight": torch.full_like(sd[prefix + "F.weight"], 0.5)}, strict=True)
    block = net.unetr_pp_encoder.stages[0][0].epa_block
    assert block.E is block.F and torch.all(block.E.weight == 0.5)


@pytest.mark.parametrize("dataset", DATASETS)
def test_official_probe_outputs(dataset):
    """Official outputs (probe weights + probe input) are reproduced within rel_tolerance x abs_max."""
    reference = json.loads((REFERENCE / f"unetr_pp_official_{dataset}_probe.json").read_text())
    net = build_official_unetr_pp(dataset).eval()
    net.load_state_dict(probe.probe_state_dict(str(REFERENCE / f"unetr_pp_official_{dataset}.json")), strict=True)
    with torch.no_grad():
        heads = net.forward_heads(probe.probe_input(reference["input_shape"]))
    ours = probe.probe_summary(heads)
    # eval_full (no deep supervision) is out1 of eval_ds in the official net; ours: test_eval_forward_is_out1
    assert reference["checks"]["ds_first_equals_full_max_abs_diff"] == 0.0
    for expected, got in zip(reference["eval_full"] + reference["eval_ds"], ours[:1] + ours):
        assert got["shape"] == expected["shape"] and got["positions"] == expected["positions"]
        tol = reference["rel_tolerance"] * expected["abs_max"]
        for key in ("mean", "std", "abs_max"):
            assert got[key] == pytest.approx(expected[key], abs=tol), key
        assert got["channel_mean"] == pytest.approx(expected["channel_mean"], abs=tol)
        assert got["values"] == pytest.approx(expected["values"], abs=tol)


@pytest.mark.parametrize("variant, channels, patch, stride", [
    ("synapse", 1, (32, 64, 64), (2, 4, 4)),
    ("acdc", 1, (16, 96, 64), (1, 4, 4)),
    ("tumor", 2, (32, 48, 32), (2, 2, 2)),
])
def test_non_official_patch_forward_backward(variant, channels, patch, stride):
    torch.manual_seed(0)
    net = build(plans_config(patch, channels=channels), True, variant=variant, stem_stride=list(stride))
    grid0 = [p // s for p, s in zip(patch, stride)]
    assert net.tokens == [torch.Size(grid0).numel() // 8 ** i for i in range(4)]
    assert net.unetr_pp_encoder.stages[0][0].pos_embed.shape == (1, net.tokens[0], 32)
    assert net.decoder2.transp_conv.conv.weight.shape[2:] == stride
    net.train()
    x = torch.randn(2, channels, *patch)
    outs = net(x)
    assert isinstance(outs, list) and len(outs) == 3
    for out, scale in zip(outs, net.deep_supervision_scales):
        assert out.shape == (2, 3, *[round(p * s) for p, s in zip(patch, scale)])
    assert outs[1].shape[2:] == tuple(grid0)
    sum(o.square().mean() for o in outs).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_eval_forward_is_out1_and_deep_supervision_toggles():
    torch.manual_seed(0)
    net = build(plans_config((16, 32, 32)), deep_supervision=False, stem_stride=[2, 4, 4])
    x = torch.randn(2, 1, 16, 32, 32)  # batch 2: the 1x1x1 bottleneck's BatchNorm needs 2 values in train mode
    assert net.deep_supervision is False and isinstance(net(x), torch.Tensor)
    net.deep_supervision = True
    net.eval()
    with torch.no_grad():
        full = net(x)
        heads = net.forward_heads(x)
    assert isinstance(full, torch.Tensor) and torch.equal(full, heads[0])
    assert [h.shape[2:] for h in heads] == [(16, 32, 32), (8, 8, 8), (4, 4, 4)]
    net.train()
    assert isinstance(net(x), list)


@pytest.mark.parametrize("pools, expected", [
    ([[1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]], (2, 4, 4)),
    ([[1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]], (1, 4, 4)),
    ([[2, 2, 2]] * 7, (4, 4, 4)),
    ([[1, 2, 2], [2, 2, 2]], (1, 1, 1)),
])
def test_stem_stride_from_plans_topology(pools, expected):
    assert stem_stride_from_pooling(pools) == expected
    patch = [8 * s for s in expected]
    assert build(plans_config(patch, pools=pools), True).stem_stride == expected


def test_official_plans_config_builds_the_official_network():
    for dataset in DATASETS:
        cfg = official_plans_config(dataset)
        with torch.device("meta"):
            derived = build({k: v for k, v in cfg.items() if k != "network_kwargs"}, True,
                            variant=cfg["network_kwargs"]["unetr_pp"]["variant"])
        assert [(k, v.shape) for k, v in derived.state_dict().items()] == [
            (k, v.shape) for k, v in meta_official(dataset).state_dict().items()]


def test_bad_patch_and_options_raise_clear_errors():
    with pytest.raises(UnetrPPError, match=r"UNETR\+\+: patch size \[64, 100, 128\] is not divisible by \[16, 32, 32\]"):
        build(plans_config((64, 100, 128)), True, stem_stride=[2, 4, 4])
    with pytest.raises(UnetrPPError, match="unknown network_kwargs"):
        build(plans_config((16, 32, 32)), True, stem_strides=[2, 4, 4])
    with pytest.raises(UnetrPPError, match="unknown variant 'brats'"):
        build(plans_config((16, 32, 32)), True, variant="brats")
    with pytest.raises(UnetrPPError, match="lacks pool_op_kernel_sizes"):
        build({"patch_size": [16, 32, 32], "num_input_channels": 1, "num_classes": 2}, True)
    net = build(plans_config((16, 32, 32)), True, stem_stride=[2, 4, 4])
    with pytest.raises(UnetrPPError, match=r"built for input \(B, 1, 16, 32, 32\) but got \(1, 1, 16, 32, 64\)"):
        net(torch.zeros(1, 1, 16, 32, 64))
