"""Tiny synthetic raw tasks for the preprocessing/planning tests (CT-like: body in zero air, two organs)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unetr_pp.io import Geometry, write_image


def make_case(shape, spacing, seed, channels=1):
    """-> (images [(z, y, x) float32 per channel], label int16 (z, y, x)); zero outside an ellipsoid body."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = np.array(shape) / 2
    body = sum(((g - c) / (0.42 * s)) ** 2 for g, c, s in zip(grid, centre, shape)) <= 1
    label = np.zeros(shape, dtype=np.int16)
    organ1 = sum(((g - c) / (0.15 * s)) ** 2 for g, c, s in zip(grid, centre + [0, 2, 2], shape)) <= 1
    organ2 = sum(((g - c) / (0.1 * s)) ** 2 for g, c, s in zip(grid, centre - [0, 3, 3], shape)) <= 1
    label[organ1 & body] = 1
    label[organ2 & body] = 2
    images = []
    for c in range(channels):
        image = rng.normal(40 + 10 * c, 15, shape).astype(np.float32)
        image[label == 1] += 60
        image[label == 2] -= 30
        image[~body] = 0
        images.append(image)
    return images, label


def make_task(base: Path, name="Task901_Tiny", n_cases=3, modality="CT", shapes=None, spacings=None, channels=1):
    """Write a v1 raw task with `n_cases` cases under base/unetr_pp_raw_data/name; returns the task folder."""
    task = base / "unetr_pp_raw_data" / name
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    shapes = shapes or [(10 + i, 24 + 2 * i, 22 + i) for i in range(n_cases)]
    spacings = spacings or [(2.0 + 0.5 * i, 1.0, 1.0) for i in range(n_cases)]
    training = []
    for i in range(n_cases):
        case = f"case_{i:03d}"
        images, label = make_case(shapes[i], spacings[i], i, channels)
        geometry = Geometry(tuple(spacings[i]), (1.0, 2.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        for c, image in enumerate(images):
            write_image(image, geometry, task / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        write_image(label, geometry, task / "labelsTr" / f"{case}.nii.gz")
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    dataset = {
        "name": name.split("_", 1)[1], "tensorImageSize": "3D",
        "modality": {str(c): modality for c in range(channels)},
        "labels": {"0": "background", "1": "organ1", "2": "organ2"},
        "numTraining": n_cases, "numTest": 0, "training": training, "test": [],
    }
    (task / "dataset.json").write_text(json.dumps(dataset, indent=1))
    return task
