"""Benchmark: our Dice + HD95 vs medpy (dc + hd95), MONAI and DeepMind surface-distance.

A synthetic abdominal CT label map (8 Synapse organs as noisy ellipsoids, spacing 3 x 0.8 x 0.8 mm,
(z, y, x) = 150 x 512 x 512 by default) and a prediction with boundary errors, a shift and
false-positive islands. Every method gets the same two label volumes and builds its own binary
masks inside the timed region. Run (peers installed in /work/venv-bench):

    PYTHONPATH=. /work/venv-bench/bin/python bench/bench_metrics.py [--scale 0.5] [--skip medpy] [--threads 2]

`ours` is `compute_case_metrics` with its defaults (one thread per usable core, at most one per organ);
`ours-1t` the same single-threaded; `--threads N` adds a run with N threads.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy.ndimage import zoom

from unetr_pp.evaluation import PROTOCOLS, compute_case_metrics
from unetr_pp.utilities.parallel import usable_cpus

# label id: (centre z, y, x in mm, semi-axes z, y, x in mm)
ORGANS = {
    6: ((260, 190, 130), (80, 80, 90)),  # liver
    7: ((280, 160, 260), (60, 45, 55)),  # stomach
    1: ((290, 230, 300), (50, 45, 30)),  # spleen
    2: ((220, 260, 130), (55, 30, 28)),  # right kidney
    3: ((230, 260, 280), (55, 30, 28)),  # left kidney
    11: ((240, 200, 220), (18, 20, 75)),  # pancreas
    8: ((225, 220, 200), (180, 12, 12)),  # aorta
    4: ((220, 150, 160), (35, 18, 18)),  # gallbladder
}
# false-positive islands in the prediction: label -> [(offset from the organ centre in mm, radius mm)]
ISLANDS = {
    6: [((0, 40, 120), 6), ((-60, -30, 40), 4)],
    1: [((20, -60, -40), 5)],
    7: [((-40, 70, 0), 7), ((30, -50, 60), 3)],
    11: [((10, 50, -100), 4)],
    2: [((-70, 0, 0), 3)],
}


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float) -> np.ndarray:
    coarse = rng.uniform(-amplitude, amplitude, size=(6, 6, 6))
    return zoom(coarse, [s / 6 for s in shape], order=3, mode="nearest")[tuple(slice(0, s) for s in shape)]


def _paint(volume: np.ndarray, label: int, centre_mm, semi_mm, spacing, rng, amplitude, shift=(0, 0, 0)) -> None:
    """Write a noisy ellipsoid of `label` into `volume` (in place)."""
    centre = [c / s + d for c, s, d in zip(centre_mm, spacing, shift)]
    semi = [a / s for a, s in zip(semi_mm, spacing)]
    lo = [max(0, int(c - 1.4 * a)) for c, a in zip(centre, semi)]
    hi = [min(n, int(c + 1.4 * a) + 1) for c, a, n in zip(centre, semi, volume.shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return
    grids = np.ogrid[tuple(slice(l, h) for l, h in zip(lo, hi))]
    radius = sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, semi))
    inside = radius < (1.0 + _smooth_noise(rng, radius.shape, amplitude)) ** 2
    volume[tuple(slice(l, h) for l, h in zip(lo, hi))][inside] = label


def make_case(shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int = 0):
    """(reference, prediction) uint8 label volumes (z, y, x) with the 8 organs; the scale follows `shape`."""
    rng = np.random.default_rng(seed)
    factor = shape[1] / 512
    reference = np.zeros(shape, np.uint8)
    prediction = np.zeros(shape, np.uint8)
    for label, (centre, semi) in ORGANS.items():
        centre = [c * factor for c in centre]
        semi = [a * factor for a in semi]
        _paint(reference, label, centre, semi, spacing, rng, 0.15)
        _paint(prediction, label, centre, semi, spacing, rng, 0.2, shift=(0, 1, 1))
        for offset, radius in ISLANDS.get(label, []):
            island = [c + o * factor for c, o in zip(centre, offset)]
            _paint(prediction, label, island, [radius * factor] * 3, spacing, rng, 0.3)
    return reference, prediction


def _timed(func):
    """(result, wall seconds, process CPU seconds) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def run_ours(reference, prediction, spacing, threads: int | None = None):
    metrics = compute_case_metrics(reference, prediction, spacing, PROTOCOLS["synapse"].targets, threads=threads)
    return {t.ids[0]: (metrics[t.name]["Dice"], metrics[t.name]["HD95"]) for t in PROTOCOLS["synapse"].targets}


def run_medpy(reference, prediction, spacing):
    from medpy.metric.binary import dc, hd95

    out = {}
    for t in PROTOCOLS["synapse"].targets:
        pred, ref = prediction == t.ids[0], reference == t.ids[0]
        out[t.ids[0]] = (dc(pred, ref), hd95(pred, ref, voxelspacing=spacing))
    return out


def run_monai(reference, prediction, spacing):
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    out = {}
    for t in PROTOCOLS["synapse"].targets:
        pred = torch.from_numpy(prediction == t.ids[0])[None, None]
        ref = torch.from_numpy(reference == t.ids[0])[None, None]
        dice = compute_dice(pred, ref, include_background=True)
        hd = compute_hausdorff_distance(pred, ref, include_background=True, percentile=95, spacing=list(spacing))
        out[t.ids[0]] = (float(dice), float(hd))
    return out


def run_deepmind(reference, prediction, spacing):
    import surface_distance

    out = {}
    for t in PROTOCOLS["synapse"].targets:
        pred, ref = prediction == t.ids[0], reference == t.ids[0]
        distances = surface_distance.compute_surface_distances(ref, pred, spacing)
        out[t.ids[0]] = (
            surface_distance.compute_dice_coefficient(ref, pred),
            surface_distance.compute_robust_hausdorff(distances, 95),
        )
    return out


WHY_DIFFERENT = (
    "why the peers' HD95 differ: ours and medpy take the 95th percentile of both directed surface-distance\n"
    "sets pooled; MONAI (compute_hausdorff_distance, percentile=95) and DeepMind (compute_robust_hausdorff)\n"
    "take max(p95 ref->pred, p95 pred->ref), which is larger when one direction holds the outliers (e.g.\n"
    "false-positive islands). DeepMind also measures between surfels on the voxel-corner grid and weights\n"
    "each distance by its surfel area, so it can be smaller too. Dice is the same for all four."
)
PEERS = {"medpy": run_medpy, "monai": run_monai, "deepmind": run_deepmind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="scale of the 150x512x512 volume (same mm extent)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every method (best time is reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(PEERS), help="peers not to run")
    parser.add_argument("--threads", type=int, default=1,
                        help="also time ours with this many threads per case (> 1)")
    args = parser.parse_args()
    shape = (max(8, round(150 * args.scale)), round(512 * args.scale), round(512 * args.scale))
    spacing = (3.0 * 150 / shape[0], 0.8 * 512 / shape[1], 0.8 * 512 / shape[2])
    reference, prediction = make_case(shape, spacing)
    print(f"volume {shape} spacing {tuple(round(s, 3) for s in spacing)}, python {platform.python_version()}")
    times, values = {}, {}
    methods = {"ours": run_ours, "ours-1t": lambda *a: run_ours(*a, threads=1)}
    if args.threads > 1:
        methods[f"ours-{args.threads}t"] = lambda *a: run_ours(*a, threads=args.threads)
    methods.update(PEERS)
    print(f"ours: {min(usable_cpus(), len(PROTOCOLS['synapse'].targets))} thread(s) (usable cores)")
    for name, func in methods.items():
        if name in args.skip:
            continue
        try:
            runs = [_timed(lambda: func(reference, prediction, spacing)) for _ in range(args.repeats)]
        except ImportError as err:
            print(f"{name}: not installed ({err.name}); skipped")
            continue
        values[name], times[name] = runs[0][0], min((wall, cpu) for _, wall, cpu in runs)
    names = {t.ids[0]: t.header for t in PROTOCOLS["synapse"].targets}
    print("\nHD95 (mm) per organ; Dice in brackets")
    print("organ " + "".join(f"{m:>22}" for m in values))
    for label, name in names.items():
        cells = "".join(f"{values[m][label][1]:>13.4f} ({values[m][label][0]:.4f})" for m in values)
        print(f"{name:<6}{cells}")
    if "medpy" in values:
        same = all(values["medpy"][k] == values["ours"][k] for k in names)
        print(f"\nours == medpy (Dice and HD95, exact float equality, all organs): {same}")
    for peer in ("monai", "deepmind"):
        if peer in values:
            ratios = [values[peer][k][1] / values["ours"][k][1] for k in names if values["ours"][k][1] > 0]
            print(f"{peer} HD95 / ours: min {min(ratios):.3f}, max {max(ratios):.3f}")
    print(WHY_DIFFERENT)
    if len(values) > 1 and any(values[m] != values["ours"] for m in values if m.startswith("ours")):
        print("ours with threads differs from ours!")
    print("\nseconds (8 organs, Dice + HD95): wall, process CPU; wall ratio peer / each of ours")
    ours = [m for m in times if m.startswith("ours")]
    for name, (wall, cpu) in times.items():
        ratio = "" if name in ours else "   " + ", ".join(f"{wall / times[m][0]:.1f}x {m}" for m in ours)
        print(f"  {name:<9}{wall:9.3f} {cpu:9.3f}{ratio}")
    print(f"  (best wall of {args.repeats} run(s) each, same process, same input)")


if __name__ == "__main__":
    main()
