"""Preprocessing memory: peak RSS bounded by the volume, memory-aware worker count, lean helpers equal to
the straightforward numpy they replace."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from unetr_pp.cli.plan_and_preprocess import main
from unetr_pp.preprocessing import resampling
from unetr_pp.preprocessing.cropping import bbox_slices, create_nonzero_mask, cropped_nonzero_mask, get_bbox
from unetr_pp.preprocessing.fingerprint import flat_indices_of_nth_true
from unetr_pp.preprocessing.preprocessor import class_locations
from unetr_pp.utilities import parallel
from unetr_pp.utilities.files import read_npy_owned, save_npy_chunks
from unetr_pp.utilities.parallel import workers_for_memory

from prep_tasks import make_task

SHAPE = (160, 256, 256)
VOLUME = 4 * int(np.prod(SHAPE))  # one float32 volume: 42 MB
ALLOWANCE = 48 * 2**20  # allocator slack and lazily loaded code beyond the warm-up run
# Warm-up on a tiny task (imports, caches), then the measured run of the big task with one worker; prints the
# peak RSS above the RSS before the measured run (VmHWM reset through clear_refs where Linux allows it).
_PROGRAM = """
import os, sys
from unetr_pp.experiment.plan_and_preprocess import PlanAndPreprocessOptions, plan_and_preprocess

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

plan_and_preprocess(PlanAndPreprocessOptions(task="Task902_Warm", processes_fullres=1, processes_lowres=1))
baseline = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    baseline = status("VmHWM")
plan_and_preprocess(PlanAndPreprocessOptions(task="Task901_Big", configurations=["3d_fullres"],
                                             processes_fullres=1, processes_lowres=1))
print(status("VmHWM") - baseline)
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")
def test_peak_rss_of_preprocessing_stays_under_three_volumes(env_folders):
    base = env_folders["unetr_pp_raw_data_base"]
    make_task(base, "Task902_Warm", n_cases=2)
    make_task(base, "Task901_Big", n_cases=2, shapes=[SHAPE, SHAPE], spacings=[(1.5, 0.8, 0.8), (1.25, 0.7, 0.7)])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    peak = int(out.stdout.split()[-1])
    # the first case is upsampled to 175x273x273 (1.2 volumes); the code before this bound peaked at ~7.5 volumes
    assert peak < 3 * VOLUME + ALLOWANCE, f"peak {peak / VOLUME:.2f} volumes above the baseline"


def _meminfo(tmp_path, monkeypatch, kib: int) -> None:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       99999999 kB\nMemFree:        1 kB\nMemAvailable:   {kib} kB\n")
    monkeypatch.setattr(parallel, "MEMINFO", str(path))


def test_workers_for_memory(tmp_path, monkeypatch, capsys):
    _meminfo(tmp_path, monkeypatch, 1024 * 1024)  # 1 GiB available
    assert workers_for_memory(8, 300 * 2**20) == 3
    assert capsys.readouterr().out == ("3 worker process(es) instead of 8: about 0.3 GB each for the largest case, "
                                       "1.0 GB of memory available\n")
    assert workers_for_memory(8, 2 * 2**30) == 1  # never below one
    capsys.readouterr()
    assert workers_for_memory(3, 300 * 2**20) == 3
    assert capsys.readouterr().out == ""  # not lowered: silent
    monkeypatch.setattr(parallel, "MEMINFO", str(tmp_path / "missing"))
    assert workers_for_memory(8, 2**40) == 8  # unknown memory: unchanged


def test_default_worker_count_follows_available_memory(env_folders, tmp_path, monkeypatch, capsys):
    make_task(env_folders["unetr_pp_raw_data_base"], n_cases=2)
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 4)
    _meminfo(tmp_path, monkeypatch, 600 * 1024)  # 600 MiB: one worker (400 MiB allowance + the tiny volumes)
    assert main(["-t", "901", "-c", "3d_fullres"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("1 worker process(es) instead of 4: about 0.4 GB each") for line in lines) == 2
    assert main(["-t", "901", "-c", "3d_fullres", "-tf", "2"]) == 0  # an explicit count is kept
    assert "instead of" not in capsys.readouterr().out


def test_nth_true_indices_equal_flatnonzero():
    rng = np.random.default_rng(0)
    mask = rng.random((300, 128, 128)) < 0.02  # 4.9 M voxels: two slabs
    ordinals = rng.integers(0, np.count_nonzero(mask), 5000)
    np.testing.assert_array_equal(flat_indices_of_nth_true(mask, ordinals), np.flatnonzero(mask)[ordinals])


def test_class_locations_equal_the_argwhere_reference():
    seg = np.zeros((1, 40, 50, 60), dtype=np.int8)
    seg[0, 5:35, 10:40, 10:50] = 1  # 36,000 voxels: 10,000 drawn
    seg[0, 20:22, 20:23, 30:33] = 2
    seg[0, 0, 0, 0] = 3
    out = class_locations(seg, [1, 2, 3, 4])
    rng = np.random.RandomState(1234)
    for c, n in ((1, 10_000), (2, 18), (3, 1)):
        where = np.argwhere(seg[0] == c).astype(np.int32)
        np.testing.assert_array_equal(out[c], where[rng.choice(len(where), n, replace=False)])
        assert out[c].dtype == np.int32
    assert out[4].shape == (0, 3)


def test_cropped_mask_equals_cropping_the_filled_mask():
    rng = np.random.default_rng(1)
    for i in range(40):
        blobs = ndimage.gaussian_filter(rng.normal(size=(2, 12, 14, 13)), 1.2) > 0.15
        data = blobs * rng.integers(1, 5, (2, 12, 14, 13))
        data[:, : i % 3] = 0
        mask = create_nonzero_mask(data)
        bbox, cropped = cropped_nonzero_mask(list(data))
        assert bbox == get_bbox(mask)
        np.testing.assert_array_equal(cropped, mask[bbox_slices(bbox)])


def test_slab_wise_resampling_does_not_depend_on_the_slab_size(monkeypatch):
    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.normal(size=(1, 21, 33, 40)), 2).astype(np.float32)
    whole = resampling.resample_data_or_seg(image, (30, 25, 52), False, None, 3)
    monkeypatch.setattr(resampling, "SLAB_VOXELS", 700)
    np.testing.assert_array_equal(resampling.resample_data_or_seg(image, (30, 25, 52), False, None, 3), whole)
    owned = resampling.resample_volume(lambda: image[0].copy(), (30, 25, 52), None, 3)
    np.testing.assert_array_equal(owned, whole[0])


def test_npy_written_in_chunks_and_read_without_mapping(tmp_path):
    array = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    save_npy_chunks(tmp_path / "a.npy", array.shape, np.float32, (array[c, i] for c in range(3) for i in range(4)))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array.astype(np.float32))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    channel = read_npy_owned(mapped, 2)
    assert not isinstance(channel, np.memmap) and channel.flags.writeable
    np.testing.assert_array_equal(channel, array[2])
    with pytest.raises(ValueError, match="values written"):
        save_npy_chunks(tmp_path / "b.npy", (2, 2), np.float32, [np.zeros(3)])
    assert not (tmp_path / "b.npy").exists()
