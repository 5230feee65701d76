"""Parameter and MAC counts of the zoo's networks (the seeds' complexity tables), computed on the meta device.

MACs are FLOPs / 2 from `torch.utils.flop_counter.FlopCounterMode`: convolutions, transposed convolutions,
linear layers, matmuls (attention) and SDPA; norms, activations and element-wise ops are not counted.
Convention "exact" counts a transposed convolution per input voxel (the true MACs). Convention "ptflops" counts
as ptflops' module hooks do: convolutions with transposed ones per *output* voxel (kernel volume times too many),
nn.Linear layers, and no functional matmuls (attention scores and weighted sums are not counted). The papers' tables differ: the UNETR, SwinUNETR
and UX-Net-family numbers (3D UX-Net tables) follow ptflops, the UNETR++ numbers are exact. Convention "paper"
(default) uses each network's paper convention (`PAPER_CONVENTION`), so the seeds' tables are reproduced.
"""
from __future__ import annotations

import copy
from math import prod
from typing import Sequence

import torch
from torch.utils import flop_counter

from unetr_pp.networks.registry import NETWORK_NAMES, build_network
from unetr_pp.planning.topology import conv_kernels_for_pooling, plans_topology
from unetr_pp.utilities.errors import UnetrPPError

CONVENTIONS = ("paper", "ptflops", "exact")
PAPER_CONVENTION = {"unetr_pp": "exact"}
DEFAULT_PAPER_CONVENTION = "ptflops"
DATASETS = ("synapse", "acdc", "lung", "tumor")
CONFIGS = ("seed",) + DATASETS
SEED_PATCH = (96, 96, 96)
SEED_CLASSES = 14
SEED_NNUNET_POOLS = 5


def _ptflops_conv(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None,
                  **kwargs) -> int:
    """FLOPs of a (transposed) convolution counted per output voxel: 2 * B * prod(out spatial) * prod(weight)."""
    return 2 * x_shape[0] * prod(out_shape[2:]) * prod(w_shape)


def _uncounted(*args, **kwargs) -> int:
    """FLOP formula of an op that ptflops does not see (functional matmuls, attention)."""
    return 0


def _ptflops_mapping() -> dict:
    """FlopCounterMode custom mapping for the ptflops convention: convs per output voxel, every other op 0."""
    conv_ops = {torch.ops.aten.convolution, torch.ops.aten._convolution}
    return {op: (_ptflops_conv if op in conv_ops else _uncounted) for op in flop_counter.flop_registry}


def _linear_macs_hook(counter: list[int]):
    """Forward hook adding an nn.Linear's MACs (output elements x in_features) to counter[0]."""
    def hook(module: torch.nn.Linear, _inputs, output: torch.Tensor) -> None:
        counter[0] += output.numel() * module.in_features
    return hook


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of `model`."""
    return sum(p.numel() for p in model.parameters())


def check_convention(convention: str) -> None:
    """Raise UnetrPPError for an unknown MAC convention."""
    if convention not in CONVENTIONS:
        raise UnetrPPError(f"unknown MAC convention {convention!r}; choose one of {list(CONVENTIONS)}")


def count_macs(model: torch.nn.Module, input_shape: Sequence[int], convention: str = "exact") -> int:
    """MACs of one eval forward of `model` on an input of `input_shape` (B, C, *patch), on the model's device.

    convention: "exact" or "ptflops" (transposed convolutions counted per output voxel).
    """
    if convention not in ("exact", "ptflops"):
        raise UnetrPPError(f"count_macs: convention must be 'exact' or 'ptflops', not {convention!r}")
    ptflops = convention == "ptflops"
    linear_macs = [0]
    hooks = [m.register_forward_hook(_linear_macs_hook(linear_macs))
             for m in model.modules() if ptflops and isinstance(m, torch.nn.Linear)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), flop_counter.FlopCounterMode(display=False,
                                                           custom_mapping=_ptflops_mapping() if ptflops else None) as fc:
            model(torch.empty(tuple(input_shape), device=device))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    return fc.get_total_flops() // 2 + linear_macs[0]


def seed_plans_config(name: str) -> dict:
    """The configuration of the seeds' tables: UNETR++ at official Synapse, the others 1 x 96^3 with 14 classes."""
    if name == "unetr_pp":
        return dataset_plans_config(name, "synapse")
    config = {"patch_size": list(SEED_PATCH), "num_input_channels": 1, "num_classes": SEED_CLASSES}
    if name == "nnunet":
        pools = [[2, 2, 2]] * SEED_NNUNET_POOLS
        convs = [list(k) for k in conv_kernels_for_pooling([1.0, 1.0, 1.0], pools)]
        config.update(pool_op_kernel_sizes=pools, conv_kernel_sizes=convs)
    return config


def pooling_spacing(pools: Sequence[Sequence[int]]) -> list[float]:
    """A spacing for which the planner's rule pools as `pools` does: 2 ** (first pooling stage) per axis."""
    first = [next((i for i, p in enumerate(pools) if p[a] > 1), len(pools)) for a in range(len(pools[0]))]
    return [float(2 ** f) for f in first]


def dataset_plans_config(name: str, dataset: str) -> dict:
    """`name` at the official UNETR++ configuration of `dataset` (patch, channels, classes, pooling)."""
    from unetr_pp.networks.official import official_plans_config

    config = official_plans_config(dataset)
    pools = config["pool_op_kernel_sizes"]
    config["conv_kernel_sizes"] = [list(k) for k in conv_kernels_for_pooling(pooling_spacing(pools), pools)]
    if name != "unetr_pp":
        config.pop("network_kwargs")
    return config


def summary_plans_config(name: str, config: str = "seed", patch_size: Sequence[int] | None = None,
                         in_channels: int | None = None, num_classes: int | None = None) -> dict:
    """The plans configuration the summary builds `name` from: `config` (seed | dataset) plus overrides.

    A new patch size gets the nnU-Net default topology (isotropic spacing) and UNETR++ the stem stride it implies.
    """
    if config not in CONFIGS:
        raise UnetrPPError(f"unknown summary configuration {config!r}; choose one of {list(CONFIGS)}")
    plans = copy.deepcopy(seed_plans_config(name) if config == "seed" else dataset_plans_config(name, config))
    if patch_size is not None:
        pools, convs = plans_topology(patch_size)
        plans.update(patch_size=[int(p) for p in patch_size], pool_op_kernel_sizes=pools, conv_kernel_sizes=convs)
        plans.get("network_kwargs", {}).get("unetr_pp", {}).pop("stem_stride", None)
    if in_channels is not None:
        plans["num_input_channels"] = int(in_channels)
    if num_classes is not None:
        plans["num_classes"] = int(num_classes)
    return plans


def build_on_meta(name: str, plans_config: dict) -> torch.nn.Module:
    """The network on the meta device (no memory, no init cost); built on the CPU first if it needs real values."""
    try:
        with torch.device("meta"):
            return build_network(name, plans_config, deep_supervision=False)
    except RuntimeError:  # e.g. MONAI SwinUNETR calls .item() while building
        return build_network(name, plans_config, deep_supervision=False).to("meta")


def summarize(name: str, plans_config: dict, convention: str = "paper") -> dict:
    """{"network", "input" [B, C, *patch], "params", "macs"} for `name` built (on the meta device) from plans_config."""
    check_convention(convention)
    if convention == "paper":
        convention = PAPER_CONVENTION.get(name, DEFAULT_PAPER_CONVENTION)
    model = build_on_meta(name, plans_config)
    input_shape = [1, int(plans_config["num_input_channels"]), *[int(p) for p in plans_config["patch_size"]]]
    return {"network": name, "input": input_shape, "params": count_params(model),
            "macs": count_macs(model, input_shape, convention)}


def summarize_all(names: Sequence[str] = NETWORK_NAMES, **options) -> list[dict]:
    """summarize() for each name at summary_plans_config(name, **options) (convention via options too)."""
    convention = options.pop("convention", "paper")
    return [summarize(name, summary_plans_config(name, **options), convention) for name in names]
