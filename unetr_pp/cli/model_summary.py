"""unetr_pp_model_summary: parameters and MACs per architecture (the seeds' complexity tables)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from tqdm import tqdm

from unetr_pp.networks.complexity import CONFIGS, CONVENTIONS, summarize, summary_plans_config
from unetr_pp.networks.registry import NETWORK_NAMES
from unetr_pp.utilities.errors import UnetrPPError, cli_main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of unetr_pp_model_summary."""
    parser = argparse.ArgumentParser(prog="unetr_pp_model_summary", description=__doc__)
    parser.add_argument("--network", default="all", choices=("all",) + NETWORK_NAMES,
                        help="architecture to summarise (default: all)")
    parser.add_argument("--config", default="seed", choices=CONFIGS,
                        help="seed = each network at its paper configuration (UNETR++ 1x64x128x128 with 14 classes, "
                             "the others 1x96^3 with 14 classes); synapse/acdc/lung/tumor = the official UNETR++ "
                             "input and classes of that dataset for every network")
    parser.add_argument("--input", type=int, nargs=3, metavar=("D", "H", "W"), help="patch size override")
    parser.add_argument("--in_channels", type=int, help="input channel override")
    parser.add_argument("--num_classes", type=int, help="output class override")
    parser.add_argument("--count", default="paper", choices=CONVENTIONS,
                        help="MAC convention: exact, ptflops (transposed convs per output voxel, no attention "
                             "matmuls), or paper = the convention of each network's published table (default)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    return parser.parse_args(argv)


def format_table(rows: list[dict]) -> str:
    """A fixed-width table: network, input, params (M), MACs (G) or the error."""
    lines = [f"{'network':<12} {'input':<18} {'params (M)':>11} {'MACs (G)':>10}"]
    for row in rows:
        shape = "x".join(map(str, row["input"]))
        if "error" in row:
            lines.append(f"{row['network']:<12} {shape:<18} {'-':>11} {'-':>10}  {row['error']}")
        else:
            lines.append(f"{row['network']:<12} {shape:<18} {row['params'] / 1e6:>11.2f} {row['macs'] / 1e9:>10.2f}")
    return "\n".join(lines)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Print params and MACs of one or all networks; a network that cannot take the input gets an error row."""
    args = parse_args(argv)
    names = NETWORK_NAMES if args.network == "all" else (args.network,)
    rows, failed = [], 0
    for name in tqdm(names, desc="counting", unit="net", disable=len(names) == 1, leave=False):
        plans = summary_plans_config(name, args.config, args.input, args.in_channels, args.num_classes)
        try:
            rows.append(summarize(name, plans, args.count))
        except UnetrPPError as err:
            if len(names) == 1:
                raise
            failed += 1
            rows.append({"network": name, "input": [1, plans["num_input_channels"], *plans["patch_size"]],
                         "params": None, "macs": None, "error": str(err)})
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 1 if failed == len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
