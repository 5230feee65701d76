"""`unetr_pp_predict --preview`: `<OUT>/preview/<case>.png`, a prediction's contours on its image, no reference."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from unetr_pp.evaluation.overlays import preview_figure, read_background, render, save_png, warn
from unetr_pp.evaluation.protocols import Target, as_targets
from unetr_pp.inference.inputs import list_input_cases
from unetr_pp.io.images import read_image
from unetr_pp.io.plans import Plans
from unetr_pp.utilities.errors import UnetrPPError

PREVIEW_FOLDER = "preview"


def plans_targets(plans: Plans) -> tuple[list[Target], bool]:
    """(targets named as the plans' labels or regions, whether channel 0 is CT)."""
    if plans.regions:
        targets = as_targets({name: ids for name, ids in plans.regions.items()})
    else:
        targets = as_targets({name: int(label) for label, name in plans.labels.items() if int(label) != 0})
    ct = str(plans.channel_names.get("0", "")).strip().upper() == "CT"
    return targets, ct


def _draw(case: str, prediction_file: Path, image_file: Path | None, targets: Sequence[Target], ct: bool):
    prediction, geometry = read_image(prediction_file)
    image = read_background(image_file, prediction.shape) if image_file is not None else None
    return preview_figure(case, prediction, geometry, targets, image, ct)


def write_previews(input_folder: str | os.PathLike, output_folder: str | os.PathLike, case_ids: Sequence[str],
                   plans: Plans, num_channels: int) -> Path:
    """Draw `<output_folder>/preview/<case>.png` for each predicted case; failures are one warning line."""
    output_folder = Path(output_folder)
    what = "preview(s) (predictions unaffected)"
    try:
        targets, ct = plans_targets(plans)
        inputs = {c.case_id: c for c in list_input_cases(input_folder, num_channels)}
    except (UnetrPPError, KeyError, TypeError, ValueError) as err:
        warn({"all cases": str(err)}, len(case_ids), what)
        return output_folder / PREVIEW_FOLDER
    failures = {}
    for case_id in tqdm(case_ids, desc="previews", unit="case"):
        case = inputs[case_id]
        image = case.images[0] if case.images else None
        data, reason = render(_draw, case_id, output_folder / f"{case_id}{case.ending}", image, targets, ct)
        if data is not None:
            reason = save_png(data, output_folder / PREVIEW_FOLDER / f"{case_id}.png")
        if reason is not None:
            failures[case_id] = reason
    warn(failures, len(case_ids), what)
    return output_folder / PREVIEW_FOLDER
