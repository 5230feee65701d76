"""Synthetic CT-like abdomen phantoms with the 8 Synapse organs, and the demo task built from them.

Anatomy is defined in a reference patient frame (millimetres of an adult abdomen, LPS axes: x to the
patient's left, y posterior, z superior), scaled per case by a body size factor and rotated slightly.
Every voxel's physical position (from spacing, origin and direction) is mapped into that frame, so
flipped or shifted headers still hold anatomically consistent labels in physical space.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from unetr_pp.io import Geometry, write_image
from unetr_pp.paths import task_name_from_id
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import check_writable_dir, publish_folder, save_json, umask_mode

AIR_HU, FAT_HU, SOFT_TISSUE_HU, BONE_HU, DISC_HU, GAS_HU = -1000.0, -100.0, 40.0, 700.0, 90.0, -900.0
HU_MIN, HU_MAX = -1024, 3071
DEMO_TASK_NAME = "Demo"
FLIPS = ((-1.0, -1.0, 1.0), (1.0, 1.0, -1.0))


@dataclass(frozen=True)
class Organ:
    """One labelled organ: label id, Synapse name and mean HU (portal-venous contrast phase)."""

    label: int
    name: str
    hu: float


ORGANS = (
    Organ(1, "spleen", 110.0),
    Organ(2, "right kidney", 170.0),
    Organ(3, "left kidney", 170.0),
    Organ(4, "gallbladder", 10.0),
    Organ(5, "liver", 95.0),
    Organ(6, "stomach", 25.0),
    Organ(7, "aorta", 200.0),
    Organ(8, "pancreas", 75.0),
)
# painting order: a later organ wins where shapes touch (the aorta and gallbladder stay whole)
PAINT_ORDER = ("liver", "spleen", "stomach", "right kidney", "left kidney", "pancreas", "gallbladder", "aorta")


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid in the reference frame: centre (x, y, z) mm, semi-axes mm, rotations (deg) about z then x."""

    center: tuple[float, float, float]
    axes: tuple[float, float, float]
    rot_z: float = 0.0
    rot_x: float = 0.0


@dataclass(frozen=True)
class Tube:
    """Tube along a polyline of (x, y, z) mm points with a radius per point (linear in between)."""

    points: tuple[tuple[float, float, float], ...]
    radii: tuple[float, ...]


# organ -> (shapes added, shapes cut away); reference adult abdomen, body semi-axes 150 x 110 mm
ANATOMY: dict[str, tuple[tuple[Ellipsoid | Tube, ...], tuple[Ellipsoid, ...]]] = {
    "liver": ((Ellipsoid((-62, 5, 35), (66, 60, 56)), Ellipsoid((5, -40, 50), (48, 26, 28), rot_z=15)), ()),
    "spleen": ((Ellipsoid((88, 42, 45), (20, 40, 38), rot_z=-35),), ()),
    "stomach": ((Ellipsoid((60, -8, 55), (30, 28, 26)), Ellipsoid((38, -48, 20), (32, 22, 32), rot_z=30)), ()),
    "right kidney": ((Ellipsoid((-66, 58, -30), (25, 22, 44), rot_z=20, rot_x=-10),),
                     (Ellipsoid((-44, 50, -30), (12, 10, 20), rot_z=20),)),
    "left kidney": ((Ellipsoid((66, 58, -15), (25, 22, 44), rot_z=-20, rot_x=-10),),
                    (Ellipsoid((44, 50, -15), (12, 10, 20), rot_z=-20),)),
    "pancreas": ((Tube(((-40, -4, -16), (-12, -12, -8), (25, -6, 0), (62, 18, 8)), (16, 12, 11, 10)),), ()),
    "gallbladder": ((Ellipsoid((-45, -45, 2), (14, 16, 28), rot_x=25),), ()),
    "aorta": ((Tube(((12, 22, -110), (10, 20, 0), (6, 24, 120)), (11, 11, 12)),), ()),
}
BODY_AXES = (150.0, 110.0)
Z_RANGE = (-90.0, 100.0)  # reference craniocaudal span that holds every organ


def _rotation(rot_z: float, rot_x: float = 0.0) -> np.ndarray:
    cz, sz = np.cos(np.radians(rot_z)), np.sin(np.radians(rot_z))
    cx, sx = np.cos(np.radians(rot_x)), np.sin(np.radians(rot_x))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ rx


def _ellipsoid_mask(q: np.ndarray, shape: Ellipsoid, scale: float, shift: np.ndarray) -> np.ndarray:
    """q: (3, ...) reference-frame points -> bool mask of the (scaled, shifted) ellipsoid."""
    local = np.tensordot(_rotation(shape.rot_z, shape.rot_x).T,
                         q - (np.asarray(shape.center, float) + shift).reshape(3, *[1] * (q.ndim - 1)), axes=1)
    axes = np.asarray(shape.axes, float) * scale
    return sum((local[i] / axes[i]) ** 2 for i in range(3)) <= 1.0


def _tube_mask(q: np.ndarray, shape: Tube, scale: float, shift: np.ndarray) -> np.ndarray:
    """q: (3, ...) reference-frame points -> bool mask of the tube (distance to each segment)."""
    points = np.asarray(shape.points, float) + shift
    radii = np.asarray(shape.radii, float) * scale
    mask = np.zeros(q.shape[1:], bool)
    for a, b, ra, rb in zip(points[:-1], points[1:], radii[:-1], radii[1:]):
        d = b - a
        rel = q - a.reshape(3, *[1] * (q.ndim - 1))
        t = np.clip(np.tensordot(d, rel, axes=1) / float(d @ d), 0.0, 1.0)
        dist2 = sum((rel[i] - t * d[i]) ** 2 for i in range(3))
        mask |= dist2 <= (ra + t * (rb - ra)) ** 2
    return mask


def _shape_mask(q: np.ndarray, shape: Ellipsoid | Tube, scale: float, shift: np.ndarray) -> np.ndarray:
    if isinstance(shape, Tube):
        return _tube_mask(q, shape, scale, shift)
    return _ellipsoid_mask(q, shape, scale, shift)


@dataclass(frozen=True)
class PhantomCase:
    """One generated case: image int16 (z, y, x) in HU, label uint8 (z, y, x), and its geometry."""

    image: np.ndarray
    label: np.ndarray
    geometry: Geometry


def _sample_grid(rng: np.random.Generator, index: int) -> tuple[float, tuple[int, int, int], Geometry]:
    """(body scale, shape (z, y, x), geometry): in-plane 0.6-1.0 mm, slices 1.5-5 mm, 20-60 x 96-160 x 96-160
    voxels. As on a scanner, the field of view follows the body size, so small bodies get fine pixels."""
    spacing_xy = rng.uniform(0.6, 1.0)
    body_width = 2 * BODY_AXES[0]
    body_scale = rng.uniform(0.26, min(0.44, 160 * spacing_xy / (body_width * 1.12)))
    fov_x = float(np.clip(body_width * body_scale * rng.uniform(1.1, 1.3), 96 * spacing_xy, 160 * spacing_xy))
    n_x = int(np.clip(round(fov_x / spacing_xy), 96, 160))
    fov_y = max(fov_x * rng.uniform(0.8, 1.0), 2 * BODY_AXES[1] * body_scale * 1.15)
    n_y = int(np.clip(round(fov_y / spacing_xy), 96, 160))
    fov_z = (Z_RANGE[1] - Z_RANGE[0]) * body_scale * rng.uniform(1.0, 1.5)
    spacing_z = rng.uniform(max(1.5, fov_z / 60), min(5.0, fov_z / 20))
    n_z = int(np.clip(round(fov_z / spacing_z), 20, 60))
    flips = FLIPS[(index // 4) % len(FLIPS)] if index % 4 == 1 else (1.0, 1.0, 1.0)
    direction = np.diag(flips)
    itk_spacing = np.array([spacing_xy, spacing_xy, spacing_z])
    itk_size = np.array([n_x, n_y, n_z])
    # field-of-view centre near the body centre, on a scanner table offset
    center = np.array([rng.uniform(-20, 20), rng.uniform(-40, 40), rng.uniform(-700, -300)])
    origin = center - direction @ (itk_spacing * (itk_size - 1) / 2)
    geometry = Geometry((float(spacing_z), float(spacing_xy), float(spacing_xy)),
                        tuple(float(v) for v in origin), tuple(float(v) for v in direction.ravel()))
    return body_scale, (n_z, n_y, n_x), geometry


def _physical_points(shape: tuple[int, int, int], geometry: Geometry) -> np.ndarray:
    """(3, z, y, x) physical ITK (x, y, z) positions of every voxel."""
    direction = np.asarray(geometry.itk_direction).reshape(3, 3)
    axes = [np.arange(n) * s for n, s in zip(reversed(shape), geometry.itk_spacing)]  # x, y, z
    points = np.asarray(geometry.itk_origin, float).reshape(3, 1, 1, 1) * np.ones((1, *shape))
    for itk_axis, numpy_axis in ((0, 2), (1, 1), (2, 0)):
        view = [1, 1, 1]
        view[numpy_axis] = shape[numpy_axis]
        points = points + direction[:, itk_axis].reshape(3, 1, 1, 1) * axes[itk_axis].reshape(1, *view)
    return points


def _start_case(seed: int, index: int) -> tuple[np.random.Generator, float, tuple[int, int, int], Geometry]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    return (rng, *_sample_grid(rng, index))


def case_grid(seed: int, index: int) -> tuple[tuple[int, int, int], Geometry]:
    """Shape (z, y, x) and geometry of case `index` without generating its voxels."""
    return _start_case(seed, index)[2:]


def generate_case(seed: int, index: int) -> PhantomCase:
    """One phantom, fully determined by (seed, index): same inputs -> byte-identical arrays."""
    rng, body_scale, shape, geometry = _start_case(seed, index)
    fov_center = np.asarray(geometry.itk_origin) + np.asarray(geometry.itk_direction).reshape(3, 3) @ (
        np.asarray(geometry.itk_spacing) * (np.array(shape[::-1]) - 1) / 2)
    z_mid = (Z_RANGE[0] + Z_RANGE[1]) / 2
    body_center = fov_center - np.array([0.0, 0.0, z_mid * body_scale]) + rng.normal(0, 2.0, 3)
    turn = _rotation(rng.uniform(-6, 6))
    points = _physical_points(shape, geometry) - body_center.reshape(3, 1, 1, 1)
    q = np.tensordot(turn.T, points, axes=1) / body_scale  # reference frame, mm
    del points

    a, b = BODY_AXES[0] * rng.uniform(0.95, 1.05), BODY_AXES[1] * rng.uniform(0.92, 1.08)
    fat = rng.uniform(10, 22)
    body = (q[0] / a) ** 2 + (q[1] / b) ** 2 <= 1.0
    inner = (q[0] / (a - fat)) ** 2 + (q[1] / (b - fat)) ** 2 <= 1.0
    image = np.full(shape, AIR_HU, np.float32)
    image[body] = FAT_HU
    image[inner] = SOFT_TISSUE_HU

    label = np.zeros(shape, np.uint8)
    organ_by_name = {organ.name: organ for organ in ORGANS}
    enlarged = PAINT_ORDER[rng.integers(len(PAINT_ORDER))]
    for name in PAINT_ORDER:
        organ = organ_by_name[name]
        scale = rng.uniform(0.9, 1.1) * (1.2 if name == enlarged else 1.0)
        shift = rng.normal(0, [4.0, 4.0, 5.0])
        added, cut = ANATOMY[name]
        mask = np.zeros(shape, bool)
        for part in added:
            mask |= _shape_mask(q, part, scale, shift)
        for part in cut:
            mask &= ~_shape_mask(q, part, scale, shift)
        mask &= inner
        label[mask] = organ.label
        image[mask] = organ.hu + rng.normal(0, 6)
        if name == "stomach":  # a gas cap in the anterior (upper when supine) part of the stomach body
            stomach_body = added[1]
            front = stomach_body.center[1] + shift[1] - 0.64 * stomach_body.axes[1] * scale
            image[mask & (q[1] < front)] = GAS_HU

    vertebra = (q[0] / 22) ** 2 + ((q[1] - 60) / 18) ** 2 <= 1.0
    spinous = (q[0] / 7) ** 2 + ((q[1] - 90) / 13) ** 2 <= 1.0
    disc = vertebra & (np.mod(q[2] + rng.uniform(0, 32), 32) < 6)
    bone = (vertebra | spinous) & inner
    image[bone] = BONE_HU
    image[disc & inner] = DISC_HU
    label[bone] = 0

    sigma_mm = 0.7
    image = gaussian_filter(image, sigma=[sigma_mm / s for s in geometry.spacing], mode="nearest")
    image += rng.normal(0, rng.uniform(10, 20), shape).astype(np.float32)
    image = np.clip(np.rint(image), HU_MIN, HU_MAX).astype(np.int16)
    missing = [o.name for o in ORGANS if not np.any(label == o.label)]
    if missing:
        raise RuntimeError(f"phantom seed={seed} index={index} lost organs {missing}; anatomy table is broken")
    return PhantomCase(image, label, geometry)


def demo_dataset_json(train_ids: list[str], test_ids: list[str], seed: int) -> dict:
    """v1 dataset.json of the demo task (modality CT, labels 0..8 named as the Synapse organs)."""
    return {
        "name": DEMO_TASK_NAME,
        "description": f"Synthetic CT-like abdomen phantoms (unetr_pp_make_demo_task, seed {seed})",
        "reference": "synthetic, generated by unetr_pp",
        "licence": "CC0",
        "release": "1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", **{str(o.label): o.name for o in ORGANS}},
        "numTraining": len(train_ids),
        "numTest": len(test_ids),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in train_ids],
        "test": [f"./imagesTs/{c}.nii.gz" for c in test_ids],
    }


def make_demo_task(output_dir: str | Path, task_id: int = 990, num_cases: int = 10, num_test_cases: int = 2,
                   seed: int = 0, overwrite: bool = False) -> Path:
    """Write `output_dir/Task<ID>_Demo/` (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json) atomically."""
    if not 0 <= task_id <= 999:
        raise UnetrPPError(f"task id must be 0..999, got {task_id}")
    if num_cases < 1 or num_test_cases < 0:
        raise UnetrPPError(f"need at least 1 training case and 0 or more test cases, got {num_cases} and "
                           f"{num_test_cases}")
    out = check_writable_dir(output_dir)
    final = out / task_name_from_id(task_id, DEMO_TASK_NAME)
    if final.exists() and not overwrite:
        raise UnetrPPError(f"{final}: task folder already exists; pass --overwrite to replace it")
    ids = [f"demo_{i:03d}" for i in range(num_cases + num_test_cases)]
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=out))
    try:
        os.chmod(tmp, umask_mode(0o777))
        for i, case_id in enumerate(tqdm(ids, desc=f"writing {final.name}", unit="case")):
            case = generate_case(seed, i)
            images, labels = ("imagesTr", "labelsTr") if i < num_cases else ("imagesTs", "labelsTs")
            write_image(case.image, case.geometry, tmp / images / f"{case_id}_0000.nii.gz")
            write_image(case.label, case.geometry, tmp / labels / f"{case_id}.nii.gz")
        if num_test_cases == 0:
            (tmp / "imagesTs").mkdir()
        save_json(demo_dataset_json(ids[:num_cases], ids[num_cases:], seed), tmp / "dataset.json")
        publish_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
