"""Overlay pictures of evaluated cases (`--plots`), of predictions alone (`--preview`) and of several networks.

Plotting never fails an evaluation or a prediction: `render` turns any error into a short reason, and the
callers report all reasons as one warning line (`warn`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage

from unetr_pp.evaluation.plots import Overlay, OverlayRow, metrics_figure, overlay_figure, png_bytes
from unetr_pp.evaluation.protocols import Target
from unetr_pp.evaluation.views import (
    CT_WINDOW,
    PERCENTILES,
    DisplayFrame,
    display_frame,
    intensity_window,
    largest_component_center,
    looks_like_ct,
    mask_center,
    volume_center,
)
from unetr_pp.io import load_dataset_json
from unetr_pp.io.images import SUPPORTED_ENDINGS, Geometry, read_image
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path

SLICE_MODES = ("disagreement", "organs")
PLOTS_FOLDER = "plots"
METRICS_PLOT = "metrics.png"
NO_IMAGE = "no image: contours on a gray background"
_REASON_CHARS = 300


@dataclass(frozen=True)
class PlotOptions:
    """Overlay settings: image folder (None: gray background), slice positions, CT window (None: from the image)."""

    images: Path | None = None
    slices: tuple[str, ...] = ("disagreement",)
    ct: bool | None = None

    def __post_init__(self) -> None:
        unknown = [mode for mode in self.slices if mode not in SLICE_MODES]
        if unknown or not self.slices:
            raise UnetrPPError(f"--plots_slices {' '.join(self.slices)}: choose from {', '.join(SLICE_MODES)}")
        if self.images is not None and not Path(self.images).is_dir():
            raise UnetrPPError(f"{self.images}: image folder (-img) not found")


def find_image(folder: Path | None, case: str) -> Path | None:
    """The case's image in `folder`: `<case>_0000<ending>` (first channel) or `<case><ending>`; None if absent."""
    if folder is None:
        return None
    for stem in (f"{case}_0000", case):
        for ending in SUPPORTED_ENDINGS:
            if (Path(folder) / f"{stem}{ending}").is_file():
                return Path(folder) / f"{stem}{ending}"
    return None


def dataset_is_ct(dataset_json: Path | None) -> bool | None:
    """Whether channel 0 of a dataset.json (file or folder) is CT; None when there is none or it is unreadable."""
    if dataset_json is None:
        return None
    folder = Path(dataset_json) if Path(dataset_json).is_dir() else Path(dataset_json).parent
    try:
        return load_dataset_json(folder).channel_names.get(0, "").strip().upper() == "CT"
    except UnetrPPError:
        return None


def read_background(path: Path, shape: Sequence[int]) -> np.ndarray:
    """An image (first component) as float32 (z, y, x); UnetrPPError when its shape differs from the labels'."""
    array, _ = read_image(path)
    if array.ndim == 4:
        array = array[..., 0]
    if tuple(array.shape) != tuple(shape):
        raise UnetrPPError(f"{path}: image shape {tuple(array.shape)} differs from the label shape {tuple(shape)}")
    return array.astype(np.float32, copy=False)


def _window(image: np.ndarray | None, ct: bool | None) -> tuple[tuple[float, float], str]:
    if image is None:
        return (0.0, 1.0), NO_IMAGE
    ct = looks_like_ct(image) if ct is None else ct
    window = intensity_window(image, ct)
    text = f"CT window L{CT_WINDOW[0]:g} W{CT_WINDOW[1]:g}" if ct else f"window {PERCENTILES[0]}–{PERCENTILES[1]} %"
    return window, text


def _masks(labels: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """Voxels of any target."""
    return np.isin(labels, sorted({i for t in targets for i in t.ids}))


def disagreement(reference: np.ndarray, prediction: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """Voxels where reference and prediction differ for any target (bool, same shape)."""
    if all(len(t.ids) == 1 for t in targets):
        return (reference != prediction) & (_masks(reference, targets) | _masks(prediction, targets))
    out = np.zeros(reference.shape, bool)
    for target in targets:
        out |= np.isin(reference, target.ids) != np.isin(prediction, target.ids)
    return out


def _where(frame: DisplayFrame, center: Sequence[int], shape: Sequence[int]) -> str:
    return f"at voxel (z, y, x) = {frame.array_index(center, shape)}"


def _disagreement_row(frame: DisplayFrame, reference: np.ndarray, predictions: Sequence[np.ndarray],
                      targets: Sequence[Target], spacing: Sequence[float]) -> tuple[str, tuple[int, int, int]]:
    """(row title, centre) through the largest disagreement of any prediction, else the reference's centre."""
    differ = np.zeros(reference.shape, bool)
    for prediction in predictions:
        differ |= disagreement(reference, prediction, targets)
    found = largest_component_center(differ)
    shape = reference.shape
    if found is not None:
        center, voxels = found
        ml = voxels * float(np.prod(spacing)) / 1000.0
        return f"largest disagreement: {voxels} voxels ({ml:.3g} ml) {_where(frame, center, shape)}", center
    foreground = _masks(reference, targets)
    center = mask_center(foreground, spacing)
    if center is not None:
        return f"no disagreement: through the reference centre {_where(frame, center, shape)}", center
    center = volume_center(shape)
    return f"reference and prediction empty: volume centre {_where(frame, center, shape)}", center


def _union_box(boxes: Sequence[Sequence[tuple[slice, ...] | None]], ids: Sequence[int]) -> tuple[slice, ...] | None:
    """The box holding label `ids` in every label volume (`find_objects` lists, index = label - 1)."""
    found = [b[i - 1] for b in boxes for i in ids if 0 < i <= len(b) and b[i - 1] is not None]
    if not found:
        return None
    return tuple(slice(min(f[d].start for f in found), max(f[d].stop for f in found)) for d in range(3))


def _organ_rows(frame: DisplayFrame, volumes: Sequence[np.ndarray], targets: Sequence[Target],
                spacing: Sequence[float]) -> list[tuple[str, tuple[int, int, int]]]:
    """(title, centre) through each target's centre (in all label `volumes` together); absent targets skipped."""
    shape = volumes[0].shape
    boxes = [ndimage.find_objects(np.ascontiguousarray(v)) for v in volumes]
    rows = []
    for target in targets:
        box = _union_box(boxes, target.ids)
        if box is None:
            continue
        mask = np.zeros(tuple(s.stop - s.start for s in box), bool)
        for volume in volumes:
            mask |= np.isin(volume[box], target.ids)
        center = tuple(c + s.start for c, s in zip(mask_center(mask, spacing), box))
        rows.append((f"{target.name}: centre {_where(frame, center, shape)}", center))
    return rows or [(f"no target present: volume centre {_where(frame, volume_center(shape), shape)}",
                     volume_center(shape))]


def _dice_note(metrics: Mapping[str, dict], name: str) -> str:
    values = metrics.get(name)
    if not values:
        return ""
    if values["n_ref"] == 0 and values["n_pred"] == 0:
        return "(absent)"
    dice = values["Dice"]
    return "DSC –" if dice is None or dice != dice else f"DSC {100 * dice:.1f}"


def case_figure(case: str, reference: np.ndarray, prediction: np.ndarray, geometry: Geometry,
                targets: Sequence[Target], options: PlotOptions, image_path: Path | None,
                metrics: Mapping[str, dict]) -> Figure:
    """Overlay of one evaluated case: reference solid, prediction dashed, on the image; rows per `options.slices`."""
    image = read_background(image_path, reference.shape) if image_path is not None else None
    frame = display_frame(geometry)
    ref, pred = frame.apply(reference), frame.apply(prediction)
    shown = frame.apply(image) if image is not None else None
    rows = []
    if "disagreement" in options.slices:
        rows.append(_disagreement_row(frame, ref, [pred], targets, frame.spacing))
    if "organs" in options.slices:
        rows += _organ_rows(frame, [ref, pred], targets, frame.spacing)
    window, window_text = _window(shown, options.ct)
    overlay = Overlay(
        title=f"{case}: reference solid, prediction dashed ({window_text})", spacing=frame.spacing, shape=ref.shape,
        rows=[OverlayRow(title, center, pred) for title, center in rows], targets=targets, image=shown,
        window=window, reference=ref, notes={t.name: _dice_note(metrics, t.name) for t in targets},
    )
    return overlay_figure(overlay)


def preview_figure(case: str, prediction: np.ndarray, geometry: Geometry, targets: Sequence[Target],
                   image: np.ndarray | None, ct: bool | None) -> Figure:
    """Overlay of a prediction alone (dashed contours) through the middle of the predicted foreground."""
    frame = display_frame(geometry)
    pred = frame.apply(prediction)
    center = mask_center(_masks(pred, targets), frame.spacing)
    where = "predicted foreground centre" if center is not None else "empty prediction: volume centre"
    center = center if center is not None else volume_center(pred.shape)
    shown = frame.apply(image) if image is not None else None
    window, window_text = _window(shown, ct)
    overlay = Overlay(
        title=f"{case}: prediction ({window_text})", spacing=frame.spacing, shape=pred.shape,
        rows=[OverlayRow(f"{where} {_where(frame, center, pred.shape)}", center, pred)], targets=targets,
        image=shown, window=window,
    )
    return overlay_figure(overlay)


def comparison_figure(case: str, reference: np.ndarray, predictions: Mapping[str, np.ndarray], geometry: Geometry,
                      targets: Sequence[Target], image: np.ndarray | None, ct: bool | None,
                      row_notes: Mapping[str, str]) -> Figure:
    """Overlay with one row per network: the same three slices (largest disagreement of any network) of one case."""
    frame = display_frame(geometry)
    ref = frame.apply(reference)
    preds = {name: frame.apply(p) for name, p in predictions.items()}
    where, center = _disagreement_row(frame, ref, list(preds.values()), targets, frame.spacing)
    shown = frame.apply(image) if image is not None else None
    window, window_text = _window(shown, ct)
    overlay = Overlay(
        title=f"{case}, the same slices for every network; {where}\nreference solid, prediction dashed ({window_text})",
        spacing=frame.spacing, shape=ref.shape, targets=targets, image=shown, window=window, reference=ref,
        rows=[OverlayRow(f"{name} {row_notes.get(name, '')}".strip(), center, pred) for name, pred in preds.items()],
    )
    return overlay_figure(overlay)


def _reason(err: Exception) -> str:
    text = str(err) if isinstance(err, UnetrPPError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())[:_REASON_CHARS]


def render(draw: Callable[..., Figure], *args) -> tuple[bytes | None, str | None]:
    """(PNG, None) of the figure `draw(*args)`, or (None, reason) when it raises: plotting never fails a run."""
    try:
        return png_bytes(draw(*args)), None
    except Exception as err:  # any plotting problem becomes a warning
        return None, _reason(err)


def save_png(data: bytes, path: Path) -> str | None:
    """Write PNG bytes atomically -> None, or the reason it failed."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        return _reason(err)
    return None


def warn(failures: Mapping[str, str], total: int, what: str) -> None:
    """One warning line on stderr listing every picture that could not be drawn (nothing when none failed)."""
    if failures:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        print(f"warning: {len(failures)} of {total} {what} not drawn ({reasons})", file=sys.stderr)


def write_evaluation_plots(out_dir: Path, pictures: Mapping[str, tuple[bytes | None, str | None]], summary: dict,
                           targets: Sequence[Target], title: str) -> tuple[str | None, list[str]]:
    """Write plots/metrics.png and plots/<case>.png -> (metric plot, overlays) relative to `out_dir` or None.

    Pictures that could not be drawn or written are reported as one warning line.
    """
    folder = Path(out_dir) / PLOTS_FOLDER
    metrics_name = METRICS_PLOT[:-4] if METRICS_PLOT[:-4] not in pictures else "metrics_plot"
    written, failures = [], {}
    metrics_png = render(metrics_figure, summary, targets, title)
    for name, (data, reason) in {metrics_name: metrics_png, **pictures}.items():
        if data is not None:
            reason = save_png(data, folder / f"{name}.png")
        if reason is None:
            written.append(f"{PLOTS_FOLDER}/{name}.png")
        else:
            failures[name] = reason
    warn(failures, len(pictures) + 1, "plot(s) (evaluation unaffected)")
    metrics_file = f"{PLOTS_FOLDER}/{metrics_name}.png"
    return (metrics_file if metrics_file in written else None), [f for f in written if f != metrics_file]
