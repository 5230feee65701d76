"""Benchmark: nnU-Net v2 `nnUNetv2_plan_and_preprocess -c 3d_fullres -np P -npfp P` vs our
`unetr_pp_plan_and_preprocess -c 3d_fullres -tf P` on the same synthetic CT-like raw task, in one run.

Prints wall time and peak RSS (sum over the process tree, sampled from /proc every 50 ms) of both,
the ratios (ours / nnU-Net), the two plans (target spacing, patch, batch) and, per case, how the
preprocessed arrays agree (shape, segmentation agreement with -1 counted as background, image error).

Run from /work/venv-bench (it has nnunetv2 and blosc2 to read nnU-Net's .b2nd files); our command runs
with --ours-python (default /work/venv/bin/python):
    PYTHONPATH=$PWD /work/venv-bench/bin/python bench/bench_preprocessing.py --cases 10 --shape 100 512 512
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unetr_pp.io import Geometry, write_image

TASK_ID = 999
TASK = f"Dataset{TASK_ID}_PrepBench"


def make_raw_task(root: Path, cases: int, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """CT-like cases (z, y, x) int16: a body (soft tissue) in air inside a round field of view, zero outside
    it, three organ labels; spacing varies per case (in-plane 0.7-0.9 mm, slices 2.5-5 mm)."""
    rng = np.random.default_rng(seed)
    task = root / TASK
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    for i in range(cases):
        z, y, x = (int(round(s * f)) for s, f in zip(shape, rng.uniform(0.85, 1.0, 3)))
        zz, yy, xx = np.ogrid[:z, :y, :x]
        ny, nx = (yy - y / 2) / (y / 2), (xx - x / 2) / (x / 2)
        fov = ny ** 2 + nx ** 2 <= 0.95 ** 2
        body = (ny / 0.75) ** 2 + (nx / 0.6) ** 2 <= 1
        image = np.where(fov, -1000, 0) + np.zeros((z, 1, 1))
        image = np.where(body, 40, image) + rng.normal(0, 20, (z, y, x)) * (fov | body)
        label = np.zeros((z, y, x), dtype=np.uint8)
        for k, (cy, cx, r, hu) in enumerate([(-0.2, -0.2, 0.18, 60), (0.1, 0.25, 0.12, 150), (0.3, -0.1, 0.08, -20)]):
            organ = ((ny - cy) / r) ** 2 + ((nx - cx) / r) ** 2 + ((zz - z / 2) / (0.35 * z)) ** 2 <= 1
            label[organ & body] = k + 1
            image[organ & body] += hu
        spacing = (float(rng.uniform(2.5, 5.0)), float(rng.uniform(0.7, 0.9)))
        geometry = Geometry((spacing[0], spacing[1], spacing[1]), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        write_image(image.astype(np.int16), geometry, task / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        write_image(label, geometry, task / "labelsTr" / f"case_{i:03d}.nii.gz")
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3},
               "numTraining": cases, "file_ending": ".nii.gz", "name": "PrepBench"}
    (task / "dataset.json").write_text(json.dumps(dataset, indent=1))
    return task


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run_measured(cmd: list[str], env: dict) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes of the process tree); raises when the command fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read()
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return wall, peak


def compare_arrays(nn_folder: Path, our_folder: Path, case_ids: list[str]) -> list[dict]:
    """Per case: shapes, segmentation agreement (-1 as 0) and image differences."""
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    dataset = nnUNetDatasetBlosc2(str(nn_folder))
    rows = []
    for case in case_ids:
        nn_data, nn_seg, _, _ = dataset.load_case(case)
        nn_data, nn_seg = np.asarray(nn_data[:]), np.asarray(nn_seg[:])
        data, seg = np.load(our_folder / f"{case}.npy"), np.load(our_folder / f"{case}_seg.npy")
        row = {"case": case, "nnunet_shape": list(nn_data.shape), "our_shape": list(data.shape)}
        if nn_data.shape == data.shape:
            row["seg_agreement"] = float(np.mean(np.maximum(nn_seg, 0) == np.maximum(seg, 0)))
            diff = np.abs(nn_data.astype(np.float64) - data)
            row["image_max_abs_diff"] = float(diff.max())
            row["image_mean_abs_diff"] = float(diff.mean())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--shape", type=int, nargs=3, default=[100, 512, 512], help="z y x of the largest case")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--ours-python", default="/work/venv/bin/python")
    parser.add_argument("--nnunet-bin", default=str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"))
    parser.add_argument("--workdir", type=Path, default=None, help="kept after the run when given")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_prep_"))
    try:
        raw = work / "unetr_pp_raw_data"
        if not (raw / TASK).is_dir():
            make_raw_task(raw, args.cases, tuple(args.shape))
        nn_pre, our_pre = work / "nnunet_preprocessed", work / "unetr_pp_preprocessed"
        for folder in (nn_pre, our_pre, work / "unetr_pp_cropped_data"):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        base_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        nn_env = dict(base_env, nnUNet_raw=str(raw), nnUNet_preprocessed=str(nn_pre),
                      nnUNet_results=str(work / "nnunet_results"))
        our_env = dict(base_env, unetr_pp_raw_data_base=str(work), unetr_pp_preprocessed=str(our_pre),
                       RESULTS_FOLDER=str(work / "results"), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        p = str(args.processes)
        nn_wall, nn_rss = run_measured([args.nnunet_bin, "-d", str(TASK_ID), "-c", "3d_fullres", "-np", p,
                                        "-npfp", p], nn_env)
        our_wall, our_rss = run_measured([args.ours_python, "-m", "unetr_pp.cli.plan_and_preprocess", "-t", TASK,
                                          "-c", "3d_fullres", "-tf", p], our_env)
        nn_plans = json.loads((nn_pre / TASK / "nnUNetPlans.json").read_text())["configurations"]["3d_fullres"]
        our_plans = json.loads((our_pre / TASK / "unetr_pp_Plansv2.1.json").read_text())["configurations"]["3d_fullres"]
        print(f"task: {args.cases} cases, largest {args.shape} (z y x), {args.processes} processes")
        print(f"{'':8} {'wall s':>8} {'peak RSS MB':>12}")
        print(f"{'nnU-Net':8} {nn_wall:8.1f} {nn_rss / 2**20:12.0f}")
        print(f"{'ours':8} {our_wall:8.1f} {our_rss / 2**20:12.0f}")
        print(f"ratio ours/nnU-Net: wall {our_wall / nn_wall:.3f}, peak RSS {our_rss / nn_rss:.3f}")
        for name, plan in (("nnU-Net", nn_plans), ("ours", our_plans)):
            print(f"plans {name}: spacing {np.round(plan['spacing'], 4).tolist()}, patch {plan['patch_size']}, "
                  f"batch {plan['batch_size']}")
        case_ids = sorted(f.name[: -len(".nii.gz")] for f in (raw / TASK / "labelsTr").iterdir())
        for row in compare_arrays(nn_pre / TASK / "nnUNetPlans_3d_fullres",
                                  our_pre / TASK / our_plans["data_identifier"], case_ids):
            print(json.dumps(row))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
