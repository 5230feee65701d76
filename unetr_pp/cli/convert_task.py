"""`unetr_pp_convert_task`: a downloaded dataset release (Synapse/BTCV, ACDC, BraTS, MSD, AMOS, FLARE21, FeTA,
KiTS19, LiTS, TCIA Pancreas-CT, BTCV json list) -> a raw task folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from unetr_pp.dataset.converters import SOURCES, convert_task, default_num_processes
from unetr_pp.utilities.errors import cli_main

_EPILOG = """\
defaults per source: synapse -> Task002_Synapse (fixed 18/12 split, 12 test cases with labels),
btcv -> Task017_BTCV (30 training + unlabelled challenge test cases), acdc -> Task001_ACDC,
brats -> Task003_tumor, msd -> the MSD folder's own id and name (Task06_Lung -> Task006_Lung),
amos -> Task218_AMOS2022 (CT; Va = fold 0 validation), flare21 -> Task221_FLARE2021,
feta -> Task222_FeTA2021, kits19 -> Task040_KiTS2019 (reoriented to RAS), lits -> Task029_LiTS,
tcia_pancreas -> Task230_TCIAPancreas (DICOM series), btcv_json -> Task018_BTCV_MONAI (json split kept).
The raw input is only read; the task is written to a temp folder and renamed at the end."""


def _task_id(text: str) -> int:
    """`-t 2` or `-t 002` -> 2."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"task id must be a number such as 2, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `unetr_pp_convert_task`."""
    parser = argparse.ArgumentParser(prog="unetr_pp_convert_task", description=__doc__, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=sorted(SOURCES), help="kind of raw release")
    parser.add_argument("-i", "--input", required=True, type=Path, help="the downloaded (unpacked) release folder")
    parser.add_argument("-t", "--task_id", type=_task_id, default=None,
                        help="task id of the output Task<ID:03d>_<Name> (default: per source, see below)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="folder that receives the task (default $unetr_pp_raw_data_base/unetr_pp_raw_data)")
    parser.add_argument("--name", default=None, help="task name (default: per source)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing task folder of that name")
    parser.add_argument("--split_json", type=Path, default=None,
                        help="amos, flare21, feta, btcv_json: a MONAI-style json list (e.g. MASILab's "
                             "dataset_FLARE.json) choosing the cases: 'test' -> test set, 'validation' -> fold 0 "
                             "validation (btcv_json default: RAW/dataset_0.json)")
    parser.add_argument("--modality", choices=("ct", "mri", "all"), default=None,
                        help="amos only: CT cases (ids <= 500, default), MRI cases (> 500) or all")
    parser.add_argument("-np", "--num_processes", type=int, default=default_num_processes(),
                        help="parallel file conversions (default: CPU count, at most 8)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Convert one raw release; prints the task folder and case counts."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_processes < 1:
        parser.error("-np must be at least 1")
    result = convert_task(args.source, args.input, args.task_id, args.name, args.output, args.overwrite,
                          args.num_processes, args.split_json, args.modality)
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"wrote {result.path}: {result.num_training} training case(s), {result.num_test} test case(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
