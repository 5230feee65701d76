"""Drawing: image slices with reference (solid) and prediction (dashed) contours, and per-target metric plots.

Figures are drawn on matplotlib's Agg canvas (no display, no pyplot state) and saved as PNG at 100 dpi.
An overlay has one row of three panels (axial, coronal, sagittal; `views.py`) per slice position; the
panels share one scale in mm, so anisotropic voxels keep their physical aspect.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from unetr_pp.evaluation.protocols import Target
from unetr_pp.evaluation.views import CORNERS, Slice2D, cut, extent_mm, slice_plan, view_shape

DPI = 100
ROW_HEIGHT = 3.2  # inches: the tallest panel of a row, at most (1-2 rows)
MANY_ROWS_HEIGHT = 6.4  # inches shared by the rows' panels when there are more than 2 rows ...
MIN_ROW_HEIGHT = 1.5  # ... but at least this per row
ROW_WIDTH = 9.6  # inches: a row's three panels together, at most
GAP = 0.06
MARGIN = 0.1
ROW_TITLE = 0.26
TITLE_LINE = 0.17  # inches per line of the figure title
LEGEND_WIDTH = 2.2
_PALETTE_ORDER = (0, 2, 4, 6, 8, 10, 12, 16, 18, 1, 3, 5, 7, 9, 11, 13, 17, 19, 14, 15)  # tab20, grays last
_NAME_CHARS = 26


def target_colour(target: Target) -> tuple[float, float, float, float]:
    """One colour per target, fixed by its first label id (the same organ has the same colour everywhere)."""
    return matplotlib.colormaps["tab20"](_PALETTE_ORDER[(target.ids[0] - 1) % len(_PALETTE_ORDER)])


@dataclass(frozen=True)
class OverlayRow:
    """Three slices through `center` (display-frame voxel) with `prediction` (display frame) outlined, if any."""

    title: str
    center: tuple[int, int, int]
    prediction: np.ndarray | None = None


@dataclass(frozen=True)
class Overlay:
    """Everything one overlay figure shows; arrays are in the display frame (`views.display_frame`).

    `image` None draws a gray background; `notes` adds text after a target's legend entry (e.g. its DSC).
    """

    title: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    rows: Sequence[OverlayRow]
    targets: Sequence[Target]
    image: np.ndarray | None = None
    window: tuple[float, float] = (0.0, 1.0)
    reference: np.ndarray | None = None
    notes: Mapping[str, str] = field(default_factory=dict)


def _contour(ax, labels: np.ndarray, present: np.ndarray, target: Target, style: str) -> None:
    """Outline `target` in a 2D label slice (cropped to the mask, padded so that contours at the border close).

    `present[k]`: label k occurs in the slice.
    """
    if not any(k < len(present) and present[k] for k in target.ids):
        return
    mask = labels == target.ids[0] if len(target.ids) == 1 else np.isin(labels, target.ids)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return
    (r0, r1), (c0, c1) = (rows[0], rows[-1] + 1), (cols[0], cols[-1] + 1)
    padded = np.pad(mask[r0:r1, c0:c1].astype(np.uint8), 1)
    ax.contour(np.arange(c0 - 1, c1 + 1), np.arange(r0 - 1, r1 + 1), padded, levels=[0.5],
               colors=[target_colour(target)], linewidths=1.3, linestyles=style)


def _orientation_letters(ax, view: str) -> None:
    top, bottom, left, right = CORNERS[view]
    style = {"color": "yellow", "fontsize": 7, "transform": ax.transAxes}
    ax.text(0.5, 0.99, top, ha="center", va="top", **style)
    ax.text(0.5, 0.01, bottom, ha="center", va="bottom", **style)
    ax.text(0.01, 0.5, left, ha="left", va="center", **style)
    ax.text(0.99, 0.5, right, ha="right", va="center", **style)
    ax.text(0.02, 0.99, view, ha="left", va="top", color="white", fontsize=7, transform=ax.transAxes)


def _panel(ax, overlay: Overlay, row: OverlayRow, plane: Slice2D) -> None:
    """One view: the image slice (gray when there is none), contours, orientation letters."""
    rows, cols = view_shape(overlay.shape, plane)
    if overlay.image is None:
        ax.imshow(np.zeros((rows, cols)), cmap="gray", vmin=-1.0, vmax=1.0, aspect=plane.aspect)
    else:
        low, high = overlay.window
        ax.imshow(cut(overlay.image, plane), cmap="gray", vmin=low, vmax=high, aspect=plane.aspect,
                  interpolation="antialiased")
    for volume, style in ((overlay.reference, "solid"), (row.prediction, "dashed")):
        if volume is not None:
            labels = cut(volume, plane)
            present = np.bincount(labels.ravel()) > 0
            for target in overlay.targets:
                _contour(ax, labels, present, target, style)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    _orientation_letters(ax, plane.view)


def _legend_handles(overlay: Overlay) -> list[Line2D]:
    handles = []
    for target in overlay.targets:
        name = target.name if len(target.name) <= _NAME_CHARS else target.name[: _NAME_CHARS - 1] + "…"
        note = overlay.notes.get(target.name)
        handles.append(Line2D([], [], color=target_colour(target), lw=2.5, label=f"{name} {note}" if note else name))
    if overlay.reference is not None:
        handles.append(Line2D([], [], color="0.2", lw=1.3, ls="solid", label="reference"))
    if any(row.prediction is not None for row in overlay.rows):
        handles.append(Line2D([], [], color="0.2", lw=1.3, ls="dashed", label="prediction"))
    return handles


def overlay_figure(overlay: Overlay) -> Figure:
    """The overlay figure: a title, one row of axial/coronal/sagittal panels per `overlay.rows`, a legend."""
    planes = slice_plan((0, 0, 0), overlay.spacing)
    extents = [extent_mm(overlay.shape, plane) for plane in planes]  # (width, height) mm
    n_rows = len(overlay.rows)
    tallest = ROW_HEIGHT if n_rows <= 2 else max(MIN_ROW_HEIGHT, MANY_ROWS_HEIGHT / n_rows)
    scale = min(tallest / max(h for _, h in extents), ROW_WIDTH / sum(w for w, _ in extents))  # inch per mm
    panel_height = max(h for _, h in extents) * scale
    row_height = ROW_TITLE + panel_height
    width = 2 * MARGIN + sum(w for w, _ in extents) * scale + 2 * GAP + LEGEND_WIDTH
    title_height = 0.12 + TITLE_LINE * (overlay.title.count("\n") + 1)
    height = title_height + n_rows * row_height + MARGIN
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.text(MARGIN / width, 1 - 0.08 / height, overlay.title, ha="left", va="top", fontsize=9)
    for r, row in enumerate(overlay.rows):
        top = height - title_height - r * row_height
        fig.text(MARGIN / width, (top - ROW_TITLE / 2) / height, row.title, ha="left", va="center", fontsize=8)
        center = tuple(min(max(int(c), 0), n - 1) for c, n in zip(row.center, overlay.shape))
        x = MARGIN
        for plane, (w_mm, h_mm) in zip(slice_plan(center, overlay.spacing), extents):
            w, h = w_mm * scale, h_mm * scale
            ax = fig.add_axes((x / width, (top - ROW_TITLE - h) / height, w / width, h / height))
            _panel(ax, overlay, row, plane)
            x += w + GAP
    fig.legend(handles=_legend_handles(overlay), loc="upper left", fontsize=7, frameon=False, handlelength=2.4,
               bbox_to_anchor=((width - MARGIN - LEGEND_WIDTH + GAP) / width, (height - title_height) / height))
    return fig


def _values(summary: dict, name: str, key: str) -> list[float]:
    values = (case["metrics"][name][key] for case in summary["metric_per_case"])
    return [float(v) for v in values if v is not None]


def _metric_axis(ax, summary: dict, targets: Sequence[Target], key: str, scale: float, label: str) -> None:
    rng = np.random.default_rng(0)  # the same jitter every time
    for i, target in enumerate(targets):
        values = np.asarray(_values(summary, target.name, key)) * scale
        if values.size == 0:
            ax.annotate("n/a", (i, 0.02), ha="center", va="bottom", fontsize=7, color="0.4",
                        xycoords=("data", "axes fraction"))
            continue
        if values.size > 1:
            ax.boxplot([values], positions=[i], widths=0.5, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"},
                       capprops={"color": "0.5"})
        ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=14, color=target_colour(target), zorder=3,
                   edgecolors="black", linewidths=0.4)
    ax.set_xticks(range(len(targets)), [t.header for t in targets], rotation=30 if len(targets) > 6 else 0,
                  ha="right" if len(targets) > 6 else "center", fontsize=8)
    ax.set_xlim(-0.6, len(targets) - 0.4)
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)


def metrics_figure(summary: dict, targets: Sequence[Target], title: str) -> Figure:
    """Per-target DSC (%) and HD95 of every case (dots, box when there are several cases), one panel each."""
    width = max(6.0, 0.55 * len(targets) + 2.0)
    fig = Figure(figsize=(width, 5.6), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1)
    _metric_axis(axes[0], summary, targets, "Dice", 100.0, "DSC (%) ↑")
    axes[0].set_ylim(-3, 103)
    _metric_axis(axes[1], summary, targets, "HD95", 1.0, f"HD95 ({summary['hd95_unit']}) ↓")
    top = max(axes[1].get_ylim()[1], 1.0)
    axes[1].set_ylim(-0.03 * top, top)  # dots at 0 stay whole
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as a 256-colour PNG at `DPI` (3-4x smaller than RGBA; gray levels and contour colours fit)."""
    fig.canvas.draw()
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    buffer = io.BytesIO()
    rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG", optimize=True,
                                                                     dpi=(DPI, DPI))
    return buffer.getvalue()
