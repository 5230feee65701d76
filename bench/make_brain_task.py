"""A BraTS-like raw task for memory benchmarks: 4 MRI channels, a head in zero background, a glioma.

Each case is `--shape` voxels (default 155×240×240, BraTS' 1 mm grid) with channels FLAIR, T1, T1ce, T2
(float32, zero outside the head, like skull-stripped BraTS), and labels 1 edema, 2 non-enhancing tumour,
3 enhancing tumour (the BraTS converter's convention). With `--regions` (default) the dataset.json is
nnU-Net v2 style with the regions WT = {1, 2, 3}, TC = {2, 3}, ET = {3} (region training, sigmoid);
`--no_regions` writes a v1 dataset.json with the four labels (softmax).

    PYTHONPATH=$PWD python bench/make_brain_task.py -o $unetr_pp_raw_data_base/unetr_pp_raw_data --cases 8
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from unetr_pp.io import Geometry, write_image

TASK = "Task997_BrainMemory"
CHANNELS = ("FLAIR", "T1", "T1ce", "T2")
# mean intensity per channel of brain, edema, non-enhancing tumour, enhancing tumour
INTENSITY = {"FLAIR": (300, 600, 450, 500), "T1": (500, 420, 300, 450), "T1ce": (500, 430, 300, 900),
             "T2": (400, 800, 700, 650)}


def _ellipsoid(grid: list[np.ndarray], centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes)) <= 1


def make_case(shape: tuple[int, int, int], seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """-> ([4 channels (z, y, x) float32], labels (z, y, x) uint8): head ellipsoid, tumour core inside edema."""
    rng = np.random.default_rng(seed)
    grid = [np.arange(n, dtype=np.float32).reshape([-1 if i == d else 1 for i in range(3)])
            for d, n in enumerate(shape)]
    size = np.array(shape, dtype=np.float32)
    head = _ellipsoid(grid, size / 2, size * np.array([0.42, 0.36, 0.3]) * rng.uniform(0.9, 1.0))
    centre = size / 2 + rng.uniform(-0.1, 0.1, 3) * size
    radius = rng.uniform(0.06, 0.1) * size.min()
    edema = _ellipsoid(grid, centre, np.array([2.0, 2.2, 1.8]) * radius) & head
    core = _ellipsoid(grid, centre, np.array([1.0, 1.1, 0.9]) * radius)
    necrosis = _ellipsoid(grid, centre, np.array([0.6, 0.65, 0.55]) * radius)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[edema] = 1
    labels[core & head] = 3
    labels[necrosis & head] = 2
    images = []
    for name in CHANNELS:
        image = rng.normal(0, 25, shape).astype(np.float32)
        image += np.asarray(INTENSITY[name], dtype=np.float32)[labels]
        image[~head] = 0
        images.append(image)
    return images, labels


def dataset_json(case_ids: list[str], regions: bool) -> dict:
    """nnU-Net v2 dataset.json with BraTS regions, or a v1 one with the four labels."""
    if regions:
        return {"name": "BrainMemory", "channel_names": {str(i): c for i, c in enumerate(CHANNELS)},
                "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
                "regions_class_order": [1, 2, 3], "numTraining": len(case_ids), "file_ending": ".nii.gz"}
    return {"name": "BrainMemory", "tensorImageSize": "3D", "modality": {str(i): c for i, c in enumerate(CHANNELS)},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            "numTraining": len(case_ids), "numTest": 0, "test": [],
            "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in case_ids]}


def make_task(out: Path, cases: int, shape: tuple[int, int, int], regions: bool) -> Path:
    """Write `out/Task997_BrainMemory` (imagesTr/labelsTr/dataset.json); returns the task folder."""
    task = out / TASK
    (task / "imagesTr").mkdir(parents=True, exist_ok=True)
    (task / "labelsTr").mkdir(exist_ok=True)
    geometry = Geometry((1.0, 1.0, 1.0), (0.0, -239.0, 0.0), (1, 0, 0, 0, -1, 0, 0, 0, 1))
    ids = [f"BRAIN_{i:03d}" for i in range(cases)]
    for i, case_id in enumerate(ids):
        images, labels = make_case(shape, i)
        for c, image in enumerate(images):
            write_image(image, geometry, task / "imagesTr" / f"{case_id}_{c:04d}.nii.gz")
        write_image(labels, geometry, task / "labelsTr" / f"{case_id}.nii.gz")
        print(f"wrote {case_id}", flush=True)
    (task / "dataset.json").write_text(json.dumps(dataset_json(ids, regions), indent=1))
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder holding raw tasks")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=(155, 240, 240))
    parser.add_argument("--no_regions", dest="regions", action="store_false", help="v1 labels, no regions")
    args = parser.parse_args()
    print(make_task(args.output, args.cases, tuple(args.shape), args.regions))


if __name__ == "__main__":
    main()
