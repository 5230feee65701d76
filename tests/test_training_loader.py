"""Patch loaders: shapes/dtypes, deep-supervision targets, oversampling, padding, regions, seeding, workers."""
from __future__ import annotations

import math
import multiprocessing
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from unetr_pp.experiment.plan_and_preprocess import PlanAndPreprocessOptions, plan_and_preprocess
from unetr_pp.io.plans import Plans
from unetr_pp.preprocessing.preprocessor import class_locations
from unetr_pp.training.data import LoaderSettings, fold_cases, load_or_create_splits, make_loaders
from unetr_pp.training.data.augmentation import (Convert2DTo3DTransform, Convert3DTo2DTransform, MaskTransform,
                                                 sampling_patch_size, use_dummy_2d)
from unetr_pp.training.data.loader import derive_seeds
from unetr_pp.training.data.sampling import do_oversample
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json, save_npy

from plans_factory import config_json, make_plans
from prep_tasks import make_task

PATCH = (16, 32, 32)
SCALES = [(1, 1, 1), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)]
PLANS = make_plans({"3d_fullres": config_json(use_mask_for_norm=[True])})
CONFIG = PLANS.configuration("3d_fullres")


def write_case(folder, case_id, data, seg):
    """A preprocessed case in the documented format (.npy, _seg.npy, .json, _fg.npz)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_npy(data.astype(np.float32), folder / f"{case_id}.npy")
    save_npy(seg.astype(np.int8), folder / f"{case_id}_seg.npy")
    save_json({"case_id": case_id}, folder / f"{case_id}.json")
    locations = class_locations(seg, [1, 2])
    np.savez(folder / f"{case_id}_fg.npz", **{f"class_{c}": v for c, v in locations.items()})


def body_case(shape, seed):
    """(1, z, y, x) data, seg with organs 1 and 2 inside a body and -1 outside the body mask."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = np.array(shape) / 2
    body = sum(((g - c) / (0.45 * s)) ** 2 for g, c, s in zip(grid, centre, shape)) <= 1
    seg = np.full(shape, -1, dtype=np.int8)
    seg[body] = 0
    seg[body & (sum(((g - c) / (0.2 * s)) ** 2 for g, c, s in zip(grid, centre, shape)) <= 1)] = 1
    seg[body & (np.abs(grid[1] - centre[1]) < 2) & (np.abs(grid[2] - centre[2] - 6) < 3)] = 2
    data = rng.normal(0, 1, (1,) + shape) + 2 * seg[None]
    data[0][~body] = 0
    return data, seg[None]


BASELINE_CHILDREN: set[int] = set()


@pytest.fixture(autouse=True)
def _baseline_children():
    BASELINE_CHILDREN.clear()
    BASELINE_CHILDREN.update(p.pid for p in multiprocessing.active_children())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prep") / "data_3d_fullres"
    for i, shape in enumerate([(24, 40, 40), (20, 44, 36), (28, 36, 40)]):
        write_case(folder, f"case_{i}", *body_case(shape, i))
    return folder


def new_children():
    """Child processes started during this test (pytest-xdist or earlier tests may own others)."""
    return [p for p in multiprocessing.active_children() if p.pid not in BASELINE_CHILDREN]


def batches(loader, n):
    with loader:
        return [next(loader) for _ in range(n)]


def test_shapes_dtypes_and_valid_labels(folder):
    settings = LoaderSettings(PATCH, 2, SCALES, num_processes=0, seed=3)
    train, val = make_loaders(folder, ["case_0", "case_1"], ["case_2"], CONFIG, settings)
    for batch in batches(train, 3) + batches(val, 2):
        assert batch["data"].dtype == torch.float32 and tuple(batch["data"].shape) == (2, 1) + PATCH
        assert len(batch["target"]) == 3
        for target, shape in zip(batch["target"], [(16, 32, 32), (8, 16, 16), (4, 8, 8)]):
            assert target.dtype == torch.int64 and tuple(target.shape) == (2, 1) + shape
            assert set(torch.unique(target).tolist()) <= {0, 1, 2}
        assert len(batch["keys"]) == 2


def test_validation_patch_is_an_exact_cut_with_nearest_ds_targets(folder):
    """Validation does no augmentation: data is a crop of the case; DS targets pick block centres."""
    settings = LoaderSettings(PATCH, 2, SCALES, oversample_foreground_percent=0.0, num_processes=0, seed=1)
    _, val = make_loaders(folder, ["case_0"], ["case_0"], CONFIG, settings)
    case = np.load(folder / "case_0.npy")
    seg = np.load(folder / "case_0_seg.npy").clip(0, None)
    for batch in batches(val, 2):
        for b in range(2):
            patch = batch["data"][b, 0].numpy()
            hits = [(z, y, x) for z in range(24 - 15) for y in range(40 - 31) for x in range(40 - 31)
                    if np.array_equal(case[0, z:z + 16, y:y + 32, x:x + 32], patch)]
            assert len(hits) == 1
            z, y, x = hits[0]
            full = batch["target"][0][b, 0].numpy()
            assert np.array_equal(full, seg[0, z:z + 16, y:y + 32, x:x + 32])
            # skimage order-0 resize: output voxel o <- input 2o + 1 (scale 1/2) and 4o + 2 (scale 1/4)
            assert np.array_equal(batch["target"][1][b, 0].numpy(), full[1::2, 1::2, 1::2])
            assert np.array_equal(batch["target"][2][b, 0].numpy(), full[2::4, 2::4, 2::4])


def test_oversampled_samples_contain_foreground(tmp_path):
    shape = (40, 80, 80)
    seg = np.zeros((1,) + shape, dtype=np.int8)
    seg[0, :3, :3, :3] = 1  # a tiny organ in a corner: a random 16x32x32 patch hits it with p ~ 0.0004
    write_case(tmp_path, "corner", np.random.default_rng(0).normal(size=(1,) + shape), seg)
    assert [do_oversample(j, 3, 0.33) for j in range(3)] == [False, False, True]
    assert [do_oversample(j, 2, 0.33) for j in range(2)] == [False, True]
    assert not do_oversample(0, 1, 0.33)  # nnU-Net v1: round(1 * 0.67) = 1 -> a batch of 1 is never forced
    for oversample, expected in ((0.33, [False, False, True]), (0.0, [False, False, False])):
        settings = LoaderSettings(PATCH, 3, oversample_foreground_percent=oversample, num_processes=0, seed=5)
        _, val = make_loaders(tmp_path, ["corner"], ["corner"], CONFIG, settings)
        for batch in batches(val, 6):
            assert [bool((batch["target"][0][b] == 1).any()) for b in range(3)] == expected


def test_small_case_is_centred_and_padded(tmp_path):
    data, seg = body_case((8, 20, 20), 4)
    write_case(tmp_path, "small", data, seg)
    settings = LoaderSettings(PATCH, 2, oversample_foreground_percent=0.0, num_processes=0, seed=0)
    train, val = make_loaders(tmp_path, ["small"], ["small"], CONFIG, settings)
    for batch in batches(val, 2):
        # need_to_pad = patch - shape = (8, 12, 12): the case sits at offset need // 2, zeros around it
        expected = np.zeros((1,) + PATCH, dtype=np.float32)
        expected[:, 4:12, 6:26, 6:26] = data
        expected_seg = np.zeros((1,) + PATCH, dtype=np.int64)
        expected_seg[:, 4:12, 6:26, 6:26] = seg.clip(0, None)
        for b in range(2):
            assert np.array_equal(batch["data"][b].numpy(), expected)
            assert np.array_equal(batch["target"][0][b].numpy(), expected_seg)
    for batch in batches(train, 2):
        assert tuple(batch["data"].shape) == (2, 1) + PATCH
        assert batch["target"][0].min() >= 0


def test_region_targets(folder):
    regions = [[1, 2], [2]]
    labels_settings = LoaderSettings(PATCH, 2, SCALES[:2], num_processes=0, seed=9)
    region_settings = LoaderSettings(PATCH, 2, SCALES[:2], num_processes=0, seed=9, regions=regions)
    _, val_labels = make_loaders(folder, ["case_0"], ["case_1", "case_2"], CONFIG, labels_settings)
    _, val_regions = make_loaders(folder, ["case_0"], ["case_1", "case_2"], CONFIG, region_settings)
    for lab, reg in zip(batches(val_labels, 2), batches(val_regions, 2)):
        assert torch.equal(lab["data"], reg["data"])
        for t_lab, t_reg in zip(lab["target"], reg["target"]):
            assert t_reg.dtype == torch.float32 and t_reg.shape[1] == 2 and t_reg.shape[2:] == t_lab.shape[2:]
            assert torch.equal(t_reg[:, 0], ((t_lab[:, 0] == 1) | (t_lab[:, 0] == 2)).float())
            assert torch.equal(t_reg[:, 1], (t_lab[:, 0] == 2).float())
        assert reg["target"][0][:, 1].sum() > 0


def test_in_process_is_deterministic_and_isolated(folder):
    def run(seed):
        settings = LoaderSettings(PATCH, 2, SCALES, num_processes=0, seed=seed)
        train, _ = make_loaders(folder, ["case_0", "case_1", "case_2"], ["case_2"], CONFIG, settings)
        return batches(train, 4)

    np.random.seed(123)
    random.seed(123)
    first = run(11)
    # the caller's global RNGs are untouched by the loader
    assert np.random.rand() == np.random.RandomState(123).rand()
    assert random.random() == random.Random(123).random()
    again, other = run(11), run(12)
    for a, b in zip(first, again):
        assert a["keys"] == b["keys"] and torch.equal(a["data"], b["data"])
        assert all(torch.equal(x, y) for x, y in zip(a["target"], b["target"]))
    assert any(not torch.equal(a["data"], b["data"]) for a, b in zip(first, other))
    # augmentation changes the data: a training patch is not a plain crop of the case for most samples
    assert any(not np.isin(a["data"].numpy(), np.load(folder / f"{a['keys'][0]}.npy")).all() for a in first)


def test_worker_processes_yield_and_shut_down(folder):
    settings = LoaderSettings(PATCH, 2, SCALES, num_processes=2, seed=4)
    train, val = make_loaders(folder, ["case_0", "case_1"], ["case_2"], CONFIG, settings)
    assert new_children() == []  # workers start lazily
    with train, val:
        got = [next(train) for _ in range(3)] + [next(val)]
        assert len(new_children()) == 3  # 2 training + max(2 // 2, 1) validation workers
    assert new_children() == []
    for batch in got:
        assert tuple(batch["data"].shape) == (2, 1) + PATCH
        assert [tuple(t.shape[2:]) for t in batch["target"]] == [(16, 32, 32), (8, 16, 16), (4, 8, 8)]
    # seeded workers give the same batches again (one queue per worker, read round-robin)
    train2, _ = make_loaders(folder, ["case_0", "case_1"], ["case_2"], CONFIG, settings)
    again = batches(train2, 3)
    assert all(torch.equal(a["data"], b["data"]) for a, b in zip(got, again))
    assert new_children() == []
    next(train2)  # a closed loader restarts its workers when used again, and close() stops them again
    assert len(new_children()) == 2
    train2.close()
    assert new_children() == []


def test_dropped_loader_stops_its_workers(folder):
    settings = LoaderSettings(PATCH, 1, num_processes=1, seed=0)
    train, _ = make_loaders(folder, ["case_0"], ["case_1"], CONFIG, settings)
    next(train)
    assert len(new_children()) == 1
    del train
    assert new_children() == []


def test_sampling_patch_size_hand_computed():
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    # rotating the corner vector by ±30° about each axis, then / 0.85 (nnU-Net v1's default scale range)
    expected = tuple(int(v / 0.85) for v in (16 * c + 32 * s, 32 * c + 32 * s, 32 * c + 16 * s))
    assert sampling_patch_size(PATCH) == expected == (35, 51, 42)
    # very anisotropic patch -> dummy 2D: first axis kept, in-plane rotation capped at 90°
    assert use_dummy_2d((8, 40, 40)) and not use_dummy_2d((16, 40, 40))
    assert sampling_patch_size((8, 40, 40)) == (8, 47, 47)


def test_dummy_2d_training_batches(tmp_path):
    data, seg = body_case((10, 48, 48), 2)
    write_case(tmp_path, "flat", data, seg)
    settings = LoaderSettings((8, 40, 40), 2, [(1, 1, 1), (1, 0.5, 0.5)], num_processes=0, seed=2)
    train, _ = make_loaders(tmp_path, ["flat"], ["flat"], CONFIG, settings)
    for batch in batches(train, 3):
        assert tuple(batch["data"].shape) == (2, 1, 8, 40, 40)
        assert [tuple(t.shape[2:]) for t in batch["target"]] == [(8, 40, 40), (8, 20, 20)]
        assert set(torch.unique(batch["target"][0]).tolist()) <= {0, 1, 2}


def test_bad_input_messages(folder, monkeypatch):
    settings = LoaderSettings(PATCH, 2, num_processes=0)
    with pytest.raises(UnetrPPError) as err:
        make_loaders(folder, ["case_0", "nope"], ["case_1"], CONFIG, settings)
    assert "nope" in str(err.value) and "nope.npy" in str(err.value)
    with pytest.raises(UnetrPPError, match="no configuration '3d_lowres'"):
        make_loaders(folder, ["case_0"], ["case_1"], PLANS.configuration("3d_lowres"), settings)
    two_channels = make_plans({"3d_fullres": config_json(num_input_channels=2)}).configuration("3d_fullres")
    with pytest.raises(UnetrPPError, match=r"expected \(2, z, y, x\)"):
        make_loaders(folder, ["case_0"], ["case_1"], two_channels, settings)
    with pytest.raises(UnetrPPError, match="deep supervision scale"):
        make_loaders(folder, ["case_0"], ["case_1"], CONFIG, LoaderSettings(PATCH, 2, [(2, 1, 1)]))
    monkeypatch.setenv("unetr_pp_n_proc_DA", "many")
    with pytest.raises(UnetrPPError, match="unetr_pp_n_proc_DA"):
        make_loaders(folder, ["case_0"], ["case_1"], CONFIG, LoaderSettings(PATCH, 2))


@pytest.mark.parametrize("num_processes", [0, 1])
def test_case_vanishing_during_training_is_a_clear_error(tmp_path, num_processes):
    write_case(tmp_path, "gone", *body_case((20, 36, 36), 1))
    settings = LoaderSettings(PATCH, 1, num_processes=num_processes, seed=0)
    train, _ = make_loaders(tmp_path, ["gone"], ["gone"], CONFIG, settings)
    (tmp_path / "gone.npy").unlink()
    with pytest.raises(UnetrPPError) as err:
        next(train)
    assert ("gone.npy" in str(err.value)) if num_processes == 0 else ("augmentation worker failed" in str(err.value))
    assert new_children() == []


def test_ranks_and_streams_get_distinct_seeds():
    seeds = derive_seeds(7, 0, 0, 2) + derive_seeds(7, 1, 0, 2) + derive_seeds(7, 0, 1, 2) + derive_seeds(8, 0, 0, 2)
    assert len(set(seeds)) == 8 and all(0 <= s < 2 ** 32 for s in seeds)
    assert derive_seeds(7, 1, 0, 2) == derive_seeds(7, 1, 0, 2) and derive_seeds(None, 0, 0, 2) is None


def test_mask_and_dummy_2d_reshape_transforms():
    data = np.arange(2 * 2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 2, 3, 4, 5) + 1
    seg = np.zeros((2, 1, 3, 4, 5), dtype=np.float32)
    seg[0, 0, 1] = -1
    out = MaskTransform([True, False])(data=data.copy(), seg=seg.copy())
    assert (out["data"][0, 0, 1] == 0).all() and (out["data"][0, 1, 1] == data[0, 1, 1]).all()
    assert np.array_equal(np.delete(out["data"][0, 0], 1, axis=0), np.delete(data[0, 0], 1, axis=0))
    assert np.array_equal(out["data"][1], data[1])
    flat = Convert3DTo2DTransform()(data=data.copy(), seg=seg.copy())
    assert flat["data"].shape == (2, 6, 4, 5) and flat["seg"].shape == (2, 3, 4, 5)
    back = Convert2DTo3DTransform()(**flat)
    assert np.array_equal(back["data"], data) and np.array_equal(back["seg"], seg) and set(back) == {"data", "seg"}


def test_on_really_preprocessed_task(env_folders):
    """The real preprocessing output (MRI: -1 outside the mask) -> splits and loaders at the planned patch."""
    shapes = [(26, 24, 6), (24, 26, 7), (25, 25, 6), (24, 24, 7), (26, 26, 6)]
    spacings = [(1.0, 1.0, 4.0 + 0.25 * i) for i in range(5)]
    make_task(env_folders["unetr_pp_raw_data_base"], "Task903_Loader", 5, "MRI", shapes, spacings)
    task = plan_and_preprocess(PlanAndPreprocessOptions(task="903", processes_fullres=1, processes_lowres=1))
    plans = load_json(task / "unetr_pp_Plansv2.1.json")
    config = plans["configurations"]["3d_fullres"]
    data_folder = task / config["data_identifier"]
    case_ids = sorted(p.name[:-len(".json")] for p in data_folder.glob("*.json"))
    train_ids, val_ids = fold_cases(load_or_create_splits(task, case_ids), 0, case_ids)
    assert (len(train_ids), len(val_ids)) == (4, 1) and (task / "splits_final.json").is_file()
    patch = tuple(config["patch_size"])
    settings = LoaderSettings(patch, 2, [(1, 1, 1), (0.5, 0.5, 0.5)], num_processes=0, seed=0)
    train, val = make_loaders(data_folder, train_ids, val_ids, Plans.from_json(plans).configuration("3d_fullres"),
                              settings)
    for batch in batches(train, 2) + batches(val, 1):
        assert tuple(batch["data"].shape) == (2, 1) + patch
        assert tuple(batch["target"][1].shape[2:]) == tuple(round(p / 2) for p in patch)
        assert set(torch.unique(batch["target"][0]).tolist()) <= {0, 1, 2}
        assert batch["target"][0][1].gt(0).any()  # the second sample of each batch is forced to foreground


def _alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_end_when_the_trainer_is_killed(folder):
    """SIGKILL of the process that owns a loader: its augmentation workers must not live on as orphans."""
    script = (
        "import multiprocessing, sys, time\n"
        "from pathlib import Path\n"
        "from unetr_pp.io.plans import Configuration\n"
        "from unetr_pp.training.data import LoaderSettings, make_loaders\n"
        f"config = Configuration.from_json('3d_fullres', {CONFIG.to_json()!r})\n"
        f"settings = LoaderSettings({PATCH!r}, 2, num_processes=2, seed=1)\n"
        "train, _ = make_loaders(Path(sys.argv[1]), ['case_0', 'case_1'], ['case_2'], config, settings)\n"
        "next(train)\n"
        "print(' '.join(str(p.pid) for p in multiprocessing.active_children()), flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def test_workers_started_late_hold_no_copy_of_the_trainer_heap(folder):
    """A worker started after the trainer allocated a big heap (network, activations) is not a fork of it.

    The owner touches 500 MB, then starts its workers: a forked worker would map those pages (Anonymous
    memory >= 500 MB, turning private as the owner rewrites them); a forkserver worker holds only its own.
    """
    script = (
        "import multiprocessing, sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from unetr_pp.io.plans import Configuration\n"
        "from unetr_pp.training.data import LoaderSettings, make_loaders\n"
        f"config = Configuration.from_json('3d_fullres', {CONFIG.to_json()!r})\n"
        f"settings = LoaderSettings({PATCH!r}, 2, num_processes=2, seed=1)\n"
        "heap = np.ones(500 * 2 ** 20, dtype=np.uint8)\n"
        "train, val = make_loaders(Path(sys.argv[1]), ['case_0', 'case_1'], ['case_2'], config, settings)\n"
        "next(train), next(val)\n"
        "heap += 1\n"
        "pids = [p.pid for p in multiprocessing.active_children()]\n"
        "kib = [int(line.split()[1]) for pid in pids for line in open(f'/proc/{pid}/smaps_rollup')\n"
        "       if line.startswith('Anonymous:')]\n"
        "print(len(pids), max(kib) // 1024)\n"
        "train.close(), val.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    workers, largest_mib = map(int, out.stdout.split())
    assert workers == 3 and largest_mib < 400, largest_mib
