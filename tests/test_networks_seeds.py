"""nnFormer, TransBTS, UNesT Base/Large, 3D UX-Net k=21: seed shapes, a training step, patch errors, references."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from unetr_pp.networks import build_network
from unetr_pp.networks.complexity import build_on_meta, seed_plans_config, summarize
from unetr_pp.networks.nnformer import relative_position_index, shift_mask
from unetr_pp.networks.transformer_blocks import partition, unpartition
from unetr_pp.networks.unest import NestLevel
from unetr_pp.training.losses import DeepSupervisionLoss, DiceCELoss
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json

from training_tasks import TASK, fold_folder, run_args, tiny_task, tiny_template  # noqa: F401 (fixtures)

NEW = ("nnformer", "transbts", "unest_base", "unest_large", "uxnet_k21")
SMALL = {
    "nnformer": ([32, 64, 64], {"embed_dim": 8, "num_heads": [1, 2, 2, 4]}),
    "transbts": ([16, 32, 32], {"base_channels": 8, "embedding_dim": 64, "num_heads": 4, "num_layers": 1,
                                "hidden_dim": 64}),
    "unest_base": ([32, 32, 64], {"embed_dims": [16, 32, 64], "num_heads": [1, 2, 2], "depths": [1, 1, 1]}),
    "unest_large": ([32, 32, 64], {"embed_dims": [16, 32, 64], "num_heads": [1, 2, 2], "depths": [1, 1, 1]}),
    "uxnet_k21": ([16, 32, 32], {"dims": [4, 8, 8, 16], "hidden_size": 16, "depths": [1, 1, 1, 1]}),
}


def small_config(name: str) -> dict:
    patch, kwargs = SMALL[name]
    return {"patch_size": patch, "num_input_channels": 1, "num_classes": 3, "network_kwargs": {name: dict(kwargs)}}


@pytest.mark.parametrize("name", NEW)
def test_seed_patch_shapes_at_full_width_on_meta(name):
    config = seed_plans_config(name)
    net = build_on_meta(name, config)
    with torch.no_grad():
        assert net.eval()(torch.empty(1, 1, 96, 96, 96, device="meta")).shape == (1, 14, 96, 96, 96)
    with torch.device("meta"):
        net = build_network(name, config, deep_supervision=True).train()
    outputs = net(torch.empty(1, 1, 96, 96, 96, device="meta"))
    assert [tuple(o.shape[2:]) for o in outputs] == [tuple(round(96 * s) for s in scale)
                                                     for scale in net.deep_supervision_scales]
    expected = [(1.0,) * 3, (0.5,) * 3, (0.25,) * 3] if name == "nnformer" else [(1.0,) * 3]
    assert net.deep_supervision_scales == expected


@pytest.mark.parametrize("name", NEW)
def test_one_training_step_lowers_the_loss(name):
    torch.manual_seed(0)
    config = small_config(name)
    net = build_network(name, config, deep_supervision=True).train()
    for module in net.modules():  # dropout off: the two losses see the same network function
        if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout3d)):
            module.p = 0.0
    patch = config["patch_size"]
    x = torch.randn(2, 1, *patch)
    target = (x > 0.5).long() + (x > 1.5).long()
    targets = [F.interpolate(target.float(), scale_factor=s[0], mode="nearest").long()
               for s in net.deep_supervision_scales]
    loss_fn = DeepSupervisionLoss(DiceCELoss(), len(targets))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    before = loss_fn(net(x), targets)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = loss_fn(net(x), targets)
    assert torch.isfinite(before) and after.item() < before.item()


@pytest.mark.parametrize("name, patch, network, divisor", [
    ("nnformer", [40, 64, 64], "nnFormer", "[32, 64, 64]"),
    ("transbts", [20, 32, 32], "TransBTS", "[8, 8, 8]"),
    ("unest_base", [48, 64, 64], "UNesT", "[32, 32, 32]"),
    ("unest_large", [64, 64, 80], "UNesT", "[32, 32, 32]"),
    ("uxnet_k21", [16, 16, 24], "3D UX-Net", "[16, 16, 16]"),
])
def test_patch_the_network_cannot_take(name, patch, network, divisor):
    config = {**small_config(name), "patch_size": patch}
    with pytest.raises(UnetrPPError) as err:
        build_network(name, config, False)
    assert str(err.value).startswith(f"{network}: patch size {patch} is not divisible by {divisor}")


def test_nnformer_window_divisor_depends_on_the_patch_and_unest_refuses_32_cubed():
    config = {**small_config("nnformer"), "patch_size": [48, 96, 96]}
    with pytest.raises(UnetrPPError, match=r"nnFormer: patch size \[32, 96, 96\] is not divisible by \[32, 64, 64\]"):
        build_network("nnformer", {**config, "patch_size": [32, 96, 96]}, False)
    build_network("nnformer", config, False)
    with pytest.raises(UnetrPPError, match=r"UNesT: patch size \[32, 32, 32\] leaves a 1x1x1 bottleneck"):
        build_network("unest_base", {**small_config("unest_base"), "patch_size": [32, 32, 32]}, False)


def test_nnformer_table_counts_eight_classes():
    """The UX-Net tables' 240.2 G is nnFormer with 8 output classes (FeTA): the head is a transposed conv."""
    config = {**seed_plans_config("nnformer"), "num_classes": 8}
    row = summarize("nnformer", config, "paper")
    assert row["macs"] / 1e9 == pytest.approx(240.2, rel=0.02)
    assert summarize("nnformer", seed_plans_config("nnformer"), "paper")["macs"] / 1e9 == pytest.approx(272.65, rel=1e-3)


def test_relative_position_index_is_one_entry_per_offset():
    window = (2, 3, 4)
    index = relative_position_index(window)
    coords = list(itertools.product(*(range(w) for w in window)))
    by_offset: dict[tuple, set] = {}
    for (i, a), (j, b) in itertools.product(enumerate(coords), repeat=2):
        by_offset.setdefault(tuple(p - q for p, q in zip(a, b)), set()).add(int(index[i, j]))
    assert all(len(v) == 1 for v in by_offset.values())
    assert len({next(iter(v)) for v in by_offset.values()}) == len(by_offset) == 3 * 5 * 7


def test_shift_mask_matches_brute_force_regions():
    shape, window, shift = (8, 4, 4), 4, 2
    mask = shift_mask(shape, window, shift, "cpu")
    grid = torch.stack(torch.meshgrid(*(torch.arange(s) for s in shape), indexing="ij"), -1)
    # after rolling by -shift, a voxel's region on each axis: 0 body, 1 last window minus shift, 2 wrapped part
    region = torch.stack([(g >= s - window).long() + (g >= s - shift).long() for g, s in zip(grid.unbind(-1), shape)], -1)
    ids = partition(region[None].float(), (window,) * 3)  # (nW, N, 3)
    same = (ids[:, :, None] == ids[:, None, :]).all(-1)
    assert torch.equal(mask == 0, same)
    assert torch.equal(unpartition(partition(grid[None].float(), (2, 2, 4)), (2, 2, 4), shape)[0], grid.float())


def test_nest_level_attends_within_blocks_only():
    torch.manual_seed(0)
    level = NestLevel(grid=(4, 4, 8), block=(2, 2, 4), dim=8, prev_dim=None, heads=2, rates=[0.0]).eval()
    x = torch.randn(1, 8, 4, 4, 8)
    y = x.clone()
    y[:, :, 3, 3, 7] += 1.0  # a voxel of the last block
    with torch.no_grad():
        diff = (level(x) - level(y)).abs().sum(1)[0]
    assert diff[2:, 2:, 4:].sum() > 0 and diff[:2].sum() == 0 and diff[:, :2].sum() == 0 and diff[:, :, :4].sum() == 0


def test_compare_and_summary_accept_the_new_names():
    from unetr_pp.cli.compare import build_parser
    from unetr_pp.cli.model_summary import main as summary_main
    assert build_parser().parse_args(["-t", "990", "--networks", *NEW]).networks == list(NEW)
    assert summary_main(["--network", "transbts", "--input", "20", "32", "32"]) == 2


def test_shifted_window_block_matches_brute_force_attention():
    """SwinBlock (roll, windows, shift mask, relative bias, MLP) against a per-token loop over the grid."""
    from unetr_pp.networks.nnformer import MASK_VALUE, SwinBlock
    torch.manual_seed(0)
    dim, heads, w, shift, n = 4, 2, 2, 1, 4
    block = SwinBlock(dim, heads, w, shift, 0.0).eval()
    x = torch.randn(1, n, n, n, dim, dtype=torch.float64)
    block.double()
    with torch.no_grad():
        q, k, v = block.attn.in_proj(block.norm1(x)[0]).chunk(3, -1)
        coords = list(itertools.product(range(n), repeat=3))
        rolled = {c: tuple((a - shift) % n for a in c) for c in coords}
        region = {c: tuple(int(r >= n - w) + int(r >= n - shift) for r in rolled[c]) for c in coords}
        d = dim // heads
        out = torch.zeros(n, n, n, dim, dtype=torch.float64)
        for c in coords:
            mates = [m for m in coords if all(a // w == b // w for a, b in zip(rolled[c], rolled[m]))]
            for h in range(heads):
                sl = slice(h * d, (h + 1) * d)
                logits = []
                for m in mates:
                    off = [a % w - b % w + w - 1 for a, b in zip(rolled[c], rolled[m])]
                    bias = block.attn.bias_table[(off[0] * (2 * w - 1) + off[1]) * (2 * w - 1) + off[2], h]
                    logits.append(q[c][sl] @ k[m][sl] / d ** 0.5 + bias + (0 if region[c] == region[m] else MASK_VALUE))
                p = torch.softmax(torch.stack(logits), 0)
                out[c][sl] = sum(pi * v[m][sl] for pi, m in zip(p, mates))
        y = x[0] + block.attn.proj(out)
        expected = y + block.mlp(block.norm2(y))
        assert torch.allclose(block(x)[0], expected, atol=1e-10)


def test_nnformer_trainer_trains_and_the_predictor_loads_it(tiny_task):
    """unetr_pp_train with nnformer_trainer (deep supervision on) on the tiny task; inference rebuilds it without."""
    from unetr_pp.cli.train import main as train_main
    from unetr_pp.inference.models import load_trained_model
    plans_path = tiny_task["unetr_pp_preprocessed"] / TASK / "unetr_pp_Plansv2.1.json"
    plans = load_json(plans_path)
    plans["configurations"]["3d_fullres"].setdefault("network_kwargs", {})["nnformer"] = dict(SMALL["nnformer"][1])
    save_json(plans, plans_path)
    assert train_main(run_args(trainer="nnformer_trainer", epochs=1, iters=1)) == 0
    folder = fold_folder(tiny_task, "nnformer_trainer")
    log = next(folder.glob("training_log_*.txt")).read_text()
    assert "deep supervision scales [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)]" in log
    model = load_trained_model(folder.parent, ["0"])
    assert model.networks[0](torch.zeros(1, 1, 16, 32, 32)).shape == (1, 3, 16, 32, 32)
