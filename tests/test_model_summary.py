"""unetr_pp_model_summary and complexity counting: hand-computed MACs, the seeds' tables, errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from unetr_pp.cli.model_summary import main
from unetr_pp.networks.complexity import count_macs, count_params

# the papers' complexity tables: params (M), MACs (G) at each network's paper configuration
SEED_TABLE = {
    "unetr_pp": (42.96, 47.98),
    "unetr": (92.80, 82.6),
    "swin_unetr": (62.19, 328.4),
    "uxnet": (53.0, 632.0),
    "repuxnet": (65.8, 757.4),
    "deformuxnet": (55.8, 635.8),
    "nnunet": (31.2, None),
    "nnformer": (149.3, None),  # 240.2 G is the 8-class (FeTA) count: test_nnformer_table_counts_eight_classes
    "transbts": (31.6, 110.4),
    "unest_base": (87.2, 258.4),
    "unest_large": (279.5, 597.8),
    "uxnet_k21": (65.9, 757.6),
}


class Tiny(nn.Module):
    """conv k3 (2->4) on 6^3, transposed conv k2 s2 (4->3), linear 8->5 on (1, 10, 8): MACs by hand below."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.up = nn.ConvTranspose3d(4, 3, 2, stride=2)
        self.linear = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.conv(x))
        scores = torch.randn(1, 10, 8) @ torch.randn(1, 8, 10)  # an attention-like matmul: 10*8*10 MACs
        return y.sum() + self.linear(torch.randn(1, 10, 8)).sum() + scores.sum()


def test_macs_by_hand():
    model = Tiny()
    conv = 6 ** 3 * 27 * 2 * 4
    up_exact = 6 ** 3 * 8 * 4 * 3  # per input voxel
    up_ptflops = 12 ** 3 * 8 * 4 * 3  # per output voxel
    linear, matmul = 10 * 8 * 5, 10 * 8 * 10
    assert count_macs(model, (1, 2, 6, 6, 6), "exact") == conv + up_exact + linear + matmul
    assert count_macs(model, (1, 2, 6, 6, 6), "ptflops") == conv + up_ptflops + linear
    assert count_params(model) == (2 * 4 * 27 + 4) + (4 * 3 * 8 + 3) + (8 * 5 + 5)


def run_json(capsys, *argv) -> list[dict]:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_configurations_match_the_papers(capsys):
    rows = {row["network"]: row for row in run_json(capsys)}
    assert list(rows) == list(SEED_TABLE)
    assert rows["unetr_pp"]["input"] == [1, 1, 64, 128, 128]
    assert all(rows[n]["input"] == [1, 1, 96, 96, 96] for n in SEED_TABLE if n != "unetr_pp")
    for name, (params, macs) in SEED_TABLE.items():
        assert rows[name]["params"] / 1e6 == pytest.approx(params, rel=0.005), name
        if macs is not None:
            assert rows[name]["macs"] / 1e9 == pytest.approx(macs, rel=0.02), name


def test_overrides_and_exact_count(capsys):
    [row] = run_json(capsys, "--network", "uxnet", "--input", "32", "32", "64", "--in_channels", "2",
                     "--num_classes", "3", "--count", "exact")
    assert row["input"] == [1, 2, 32, 32, 64]
    [ptflops] = run_json(capsys, "--network", "uxnet", "--input", "32", "32", "64", "--in_channels", "2",
                         "--num_classes", "3", "--count", "ptflops")
    # four transposed convs k2 s2 (768->384 ... 96->48) counted 8x by ptflops: 7 x their exact MACs more
    vox = 32 * 32 * 64
    transposed = sum(vox // 8 ** (i + 1) * 8 * cin * cout
                     for i, (cin, cout) in enumerate([(96, 48), (192, 96), (384, 192), (768, 384)]))
    assert ptflops["macs"] - row["macs"] == 7 * transposed
    assert ptflops["params"] == row["params"]


def test_dataset_config_table_reports_networks_that_cannot_take_the_patch(capsys):
    assert main(["--config", "acdc"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "1x1x16x160x160" in lines["unetr_pp"] and "66.80" in lines["unetr_pp"]
    assert "not divisible by [32, 32, 32]" in lines["swin_unetr"]


def test_single_network_error_exits_2(capsys):
    assert main(["--network", "swin_unetr", "--input", "16", "32", "32"]) == 2
    err = capsys.readouterr().err
    assert "SwinUNETR" in err and "[16, 32, 32]" in err and "[32, 32, 32]" in err


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "unetr_pp.cli.model_summary", "--network", "nnunet", "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["params"] == 31_204_384
