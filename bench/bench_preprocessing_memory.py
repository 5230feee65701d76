"""Benchmark: peak resident memory of `plan_and_preprocess` per stage, one worker, on a CT-like pair.

Generates two CT-like int16 cases of `--shape` (default 600×512×512, a body in air inside a round field
of view, three organ labels) with spacings 1.5×0.8×0.8 and 1.25×0.7×0.7 mm (z, y, x), so both cases are
resampled to the planned median spacing (3-D spline path). Then runs the real pipeline in this process
(`-c 3d_fullres`, one worker) with the named functions below wrapped: each wrapper records the wall
time and the peak RSS while the function ran (VmHWM, reset through /proc/self/clear_refs at every
stage boundary, nested stages kept exact). Prints, per stage, the largest peak over the cases, that
peak minus the RSS after imports, and the latter divided by one float32 volume of the largest case.

    PYTHONPATH=$PWD python bench/bench_preprocessing_memory.py --shape 600 512 512 --workdir /tmp/pm
Run the same command with PYTHONPATH of another checkout to measure that code on the same files (the
raw task in --workdir is reused).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from unetr_pp.io import Geometry, write_image

TASK = "Task998_PrepMemory"
SPACINGS = ((1.5, 0.8, 0.8), (1.25, 0.7, 0.7))
STAGES = {  # module -> {function name: stage label}; names missing in a checkout are skipped
    "unetr_pp.preprocessing.fingerprint": {
        "_analyze": "fingerprint case (total)", "_crop_into_cache": "read + crop + write cache",
        "read_case_images": "read image", "read_case_channels": "read image", "read_image": "read label",
        "crop_with_properties": "crop", "cropped_nonzero_mask": "crop", "save_npy": "save crop cache",
        "save_npy_chunks": "save crop cache", "foreground_samples": "intensity samples",
    },
    "unetr_pp.preprocessing.preprocessor": {
        "_run_case": "preprocess case (total)", "load_or_crop": "load cropped", "normalize": "normalize",
        "resample_data_or_seg": "resample", "preprocess_data": "normalize + resample data",
        "save_npy": "save data", "preprocess_seg": "resample seg",
        "class_locations": "foreground locations", "_write_case": "save",
    },
}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class PeakRecorder:
    """Stage -> (largest peak RSS, total seconds); nested stages each get their own exact peak."""

    def __init__(self) -> None:
        self.stack: list[list] = []
        self.peaks: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def _fold(self) -> None:
        peak = _status("VmHWM")
        for frame in self.stack:
            frame[1] = max(frame[1], peak)
        _reset_peak()

    def wrap(self, func, label: str):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            self._fold()
            self.stack.append([label, 0, time.perf_counter()])
            try:
                return func(*args, **kwargs)
            finally:
                self._fold()
                name, peak, start = self.stack.pop()
                self.peaks[name] = max(self.peaks.get(name, 0), peak)
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return wrapper


def make_pair(root: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """Two CT-like int16 cases of `shape` (z, y, x), written slab by slab in z to bound the memory."""
    task = root / TASK
    (task / "imagesTr").mkdir(parents=True, exist_ok=True)
    (task / "labelsTr").mkdir(exist_ok=True)
    z, y, x = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:y, :x]
    ny, nx = (yy - y / 2) / (y / 2), (xx - x / 2) / (x / 2)
    fov = ny ** 2 + nx ** 2 <= 0.95 ** 2
    body = (ny / 0.75) ** 2 + (nx / 0.6) ** 2 <= 1
    base = np.where(body, 40, np.where(fov, -1000, 0)).astype(np.float32)
    organs = [(-0.2, -0.2, 0.18, 60), (0.1, 0.25, 0.12, 150), (0.3, -0.1, 0.08, -20)]
    for i, spacing in enumerate(SPACINGS):
        image = np.empty(shape, dtype=np.int16)
        label = np.zeros(shape, dtype=np.uint8)
        for k in range(z):
            plane = base + rng.normal(0, 20, (y, x)).astype(np.float32) * (fov | body)
            for j, (cy, cx, r, hu) in enumerate(organs):
                organ = ((ny - cy) / r) ** 2 + ((nx - cx) / r) ** 2 + ((k - z / 2) / (0.35 * z)) ** 2 <= 1
                label[k][organ & body] = j + 1
                plane[organ & body] += hu
            image[k] = np.round(plane)
        geometry = Geometry(spacing, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        write_image(image, geometry, task / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        write_image(label, geometry, task / "labelsTr" / f"case_{i:03d}.nii.gz")
        del image, label
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3},
               "numTraining": len(SPACINGS), "file_ending": ".nii.gz", "name": "PrepMemory"}
    (task / "dataset.json").write_text(json.dumps(dataset, indent=1))
    return task


def install(recorder: PeakRecorder) -> list[str]:
    """Wrap every named function that exists; returns the labels wrapped."""
    wrapped = []
    for module_name, names in STAGES.items():
        module = importlib.import_module(module_name)
        for name, label in names.items():
            if hasattr(module, name):
                setattr(module, name, recorder.wrap(getattr(module, name), label))
                wrapped.append(label)
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[600, 512, 512], help="z y x of both cases")
    parser.add_argument("--workdir", type=Path, default=None, help="kept (and the raw task reused) when given")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_prepmem_"))
    raw = work / "unetr_pp_raw_data"
    try:
        if not (raw / TASK / "dataset.json").is_file():
            start = time.perf_counter()
            make_pair(raw, tuple(args.shape))
            print(f"generated {TASK} in {time.perf_counter() - start:.0f} s")
        for folder in (work / "unetr_pp_preprocessed", work / "unetr_pp_cropped_data"):
            shutil.rmtree(folder, ignore_errors=True)
        os.environ.update(unetr_pp_raw_data_base=str(work), unetr_pp_preprocessed=str(work / "unetr_pp_preprocessed"),
                          RESULTS_FOLDER=str(work / "results"))
        from unetr_pp.experiment.plan_and_preprocess import PlanAndPreprocessOptions, plan_and_preprocess

        recorder = PeakRecorder()
        install(recorder)
        baseline = _status("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        plan_and_preprocess(PlanAndPreprocessOptions(task=TASK, configurations=["3d_fullres"],
                                                     processes_fullres=1, processes_lowres=1))
        wall = time.perf_counter() - start
        total_peak = _status("VmHWM")
        for frame_peak in recorder.peaks.values():
            total_peak = max(total_peak, frame_peak)
        volume = 4 * int(np.prod(args.shape))
        print(f"shape {args.shape}, float32 volume {volume / 2**20:.0f} MB, RSS after imports {baseline / 2**20:.0f} MB")
        print(f"{'stage':28} {'seconds':>8} {'peak MB':>8} {'-imports MB':>11} {'/ volume':>8}")
        for label in recorder.peaks:
            peak = recorder.peaks[label]
            print(f"{label:28} {recorder.seconds[label]:8.1f} {peak / 2**20:8.0f} {(peak - baseline) / 2**20:11.0f} "
                  f"{(peak - baseline) / volume:8.2f}")
        print(f"{'whole run':28} {wall:8.1f} {total_peak / 2**20:8.0f} {(total_peak - baseline) / 2**20:11.0f} "
              f"{(total_peak - baseline) / volume:8.2f}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
