"""comparison_slices.png: the same three slices of one validation case for every network, one row each."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from unetr_pp.comparison.runs import NetworkRun
from unetr_pp.evaluation.folders import as_label_array
from unetr_pp.evaluation.overlays import (
    comparison_figure,
    dataset_is_ct,
    find_image,
    read_background,
    render,
    save_png,
    warn,
)
from unetr_pp.evaluation.protocols import Target, resolve_protocol
from unetr_pp.io.images import image_ending, read_image
from unetr_pp.paths import raw_data_folder
from unetr_pp.utilities.errors import UnetrPPError

SLICES_FILE = "comparison_slices.png"


def validation_files(run: NetworkRun) -> dict[str, Path]:
    """case id -> prediction file in the fold's validation_raw/."""
    folder = run.fold_dir / "validation_raw"
    if not folder.is_dir():
        return {}
    return {p.name[: -len(ending)]: p for p in sorted(folder.iterdir())
            if (ending := image_ending(p)) is not None and not p.name.startswith(".")}


def _draw(case: str, reference_file: Path, predictions: dict[str, Path], raw_task: Path, targets: Sequence[Target],
          row_notes: dict[str, str]):
    reference, geometry = read_image(reference_file)
    labels = {name: as_label_array(read_image(path)[0], path) for name, path in predictions.items()}
    image_file = find_image(raw_task / "imagesTr", case)
    image = read_background(image_file, reference.shape) if image_file is not None else None
    return comparison_figure(case, as_label_array(reference, reference_file), labels, geometry, targets, image,
                             dataset_is_ct(raw_task / "dataset.json"), row_notes)


def _targets(raw_task: Path, protocol: str | None) -> list[Target]:
    chosen = resolve_protocol(protocol, None, None, raw_task / "labelsTr")
    if chosen is None:
        raise UnetrPPError(f"{raw_task}: no dataset.json with labels to draw")
    return list(chosen.targets)


def write_comparison_slices(runs: Sequence[NetworkRun], rows: Sequence[dict], task: str, protocol: str | None,
                            out_dir: Path) -> tuple[Path | None, str]:
    """Draw `out_dir/comparison_slices.png` for the first validation case every successful network predicted.

    Returns (the file or None, a line for comparison.md); a picture that cannot be drawn is one warning line.
    """
    try:
        raw_task = raw_data_folder() / task
    except UnetrPPError as err:
        warn({SLICES_FILE: str(err)}, 1, "picture")
        return None, ""
    ok = [(run, row) for run, row in zip(runs, rows) if row["status"] != "failed"]
    files = {run.network: validation_files(run) for run, _ in ok}
    common = sorted(set.intersection(*(set(f) for f in files.values()))) if files else []
    references = [c for c in common if find_image(raw_task / "labelsTr", c) is not None]
    if not references:
        warn({SLICES_FILE: "no validation case predicted by every network with a label in labelsTr"}, 1, "picture")
        return None, ""
    case = references[0]
    notes = {row["network"]: f"(mean DSC {100 * row['mean_dice']:.1f} % over the validation cases)"
             for _, row in ok if row["mean_dice"] is not None}
    data, reason = render(lambda: _draw(case, find_image(raw_task / "labelsTr", case),
                                        {network: f[case] for network, f in files.items()}, raw_task,
                                        _targets(raw_task, protocol), notes))
    path = out_dir / SLICES_FILE
    if data is not None:
        reason = save_png(data, path)
    if reason is not None:
        warn({SLICES_FILE: reason}, 1, "picture")
        return None, ""
    return path, (f"- {SLICES_FILE}: validation case {case}, the same axial, coronal and sagittal slices (through the "
                  f"largest disagreement of any network) for {', '.join(files)}; reference solid, prediction dashed")
