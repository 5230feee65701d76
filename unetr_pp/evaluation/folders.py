"""Evaluate a folder of predictions against a folder of references (files matched by case name).

Checks everything it can before the slow part: missing predictions (all listed), unreadable
headers, shape/spacing/origin/direction mismatches. Voxel-level problems (label values outside the
protocol, non-label images, truncated files) are collected over all cases and reported together;
no output is written when there is any problem.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from unetr_pp.evaluation.metrics import (
    case_bounding_boxes,
    check_options,
    compute_case_metrics,
    empty_target_metrics,
)
from unetr_pp.evaluation.protocols import (Protocol, Target, find_dataset_json, label_target, resolve_protocol,
                                          restrict_protocol)
from unetr_pp.evaluation.report import build_summary, write_reports
from unetr_pp.io.images import SUPPORTED_ENDINGS, Geometry, image_ending, read_image
from unetr_pp.inference.postprocessing import Step, apply_postprocessing
from unetr_pp.inference.label_map import LabelMap, parse_label_map
from unetr_pp.utilities.errors import UnetrPPError, problems_error
from unetr_pp.utilities.parallel import default_workers, parallel_map

if TYPE_CHECKING:
    from unetr_pp.evaluation.overlays import PlotOptions

DEFAULT_NUM_PROCESSES = default_workers(4)


@dataclass(frozen=True)
class _Job:
    case: str
    reference: Path
    prediction: Path
    targets: tuple[Target, ...] | None
    allowed: frozenset[int] | None
    hd95_unit: str
    empty: str
    label_map: LabelMap | None = None
    postprocessing: tuple[Step, ...] = ()
    threads: int = 1  # per case: > 1 when there are fewer cases than processes
    plots: PlotOptions | None = None
    image: Path | None = None


def _image_files(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise UnetrPPError(f"{folder}: {role} folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        ending = image_ending(path)
        if ending is None or path.name.startswith(".") or not path.is_file():
            continue
        case = path.name[: -len(ending)]
        if case in files:
            raise UnetrPPError(f"{folder}: case {case!r} has two {role} files: {files[case].name}, {path.name}")
        files[case] = path
    return files


def match_cases(ref_dir: Path, pred_dir: Path, only_predicted: bool) -> list[tuple[str, Path, Path]]:
    """(case, reference, prediction) for every reference (or only the predicted ones); errors list all misses."""
    references = _image_files(ref_dir, "reference")
    predictions = _image_files(pred_dir, "prediction")
    if not references:
        raise UnetrPPError(f"{ref_dir}: no reference images ({', '.join(SUPPORTED_ENDINGS)})")
    orphans = sorted(set(predictions) - set(references))
    if orphans:
        print(f"warning: {len(orphans)} prediction(s) without a reference in {ref_dir} are not evaluated: "
              f"{', '.join(predictions[c].name for c in orphans)}", file=sys.stderr)
    missing = [c for c in references if c not in predictions]
    if missing and not only_predicted:
        raise problems_error(
            f"{pred_dir}: predictions missing for {len(missing)} of {len(references)} reference case(s) "
            "(use --only-predicted to evaluate just the predicted ones)",
            [f"{pred_dir / (c + image_ending(references[c]))}: missing (reference {references[c]})" for c in missing],
        )
    pairs = [(c, references[c], predictions[c]) for c in references if c in predictions]
    if not pairs:
        raise UnetrPPError(f"{pred_dir}: no prediction matches a reference in {ref_dir}")
    return pairs


def _read_header(path: Path) -> tuple[tuple[int, ...], Geometry, int]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise UnetrPPError(f"{path}: cannot read image header: {' '.join(str(err).split())[:200]}") from None
    geometry = Geometry(
        spacing=tuple(reversed(reader.GetSpacing())), itk_origin=reader.GetOrigin(), itk_direction=reader.GetDirection()
    )
    return tuple(reversed(reader.GetSize())), geometry, reader.GetNumberOfComponents()


def check_headers(pairs: Iterable[tuple[str, Path, Path]]) -> None:
    """Every prediction must be a single-component image with its reference's shape and geometry."""
    problems = []
    for _, ref_path, pred_path in pairs:
        try:
            ref_shape, ref_geometry, ref_components = _read_header(ref_path)
            pred_shape, pred_geometry, pred_components = _read_header(pred_path)
        except UnetrPPError as err:
            problems.append(str(err))
            continue
        for path, components in ((ref_path, ref_components), (pred_path, pred_components)):
            if components != 1:
                problems.append(f"{path}: {components} components per voxel, expected a label image")
        if pred_shape != ref_shape:
            problems.append(f"{pred_path}: shape {pred_shape} differs from reference {ref_path} {ref_shape}")
            continue
        for field in pred_geometry.mismatch(ref_geometry):
            problems.append(
                f"{pred_path}: {field} {tuple(round(v, 6) for v in getattr(pred_geometry, field))} differs "
                f"from reference {ref_path} {tuple(round(v, 6) for v in getattr(ref_geometry, field))}"
            )
    if problems:
        raise problems_error("predictions do not match their references", problems)


def as_label_array(array: np.ndarray, path: Path) -> np.ndarray:
    """Non-negative integer label array from an image read from `path` (floats must be whole numbers)."""
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.rint(array)):
            raise UnetrPPError(f"{path}: non-integer voxel values, not a label image")
        if array.size and array.min() < 0:
            raise UnetrPPError(f"{path}: negative voxel value {array.min():g}, not a label image")
        return array.astype(np.min_scalar_type(int(array.max(initial=0))))
    if array.dtype.kind not in "iu":
        raise UnetrPPError(f"{path}: voxel type {array.dtype} is not a label image")
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise UnetrPPError(f"{path}: negative voxel value {array.min()}, not a label image")
    return array


def check_output_dir(out_dir: Path) -> None:
    """UnetrPPError unless `out_dir` (or, if it does not exist yet, its nearest existing parent) is writable.

    Nothing is created here, so a failed evaluation leaves no empty output folder behind.
    """
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UnetrPPError(f"{out_dir}: output folder cannot be created ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnetrPPError(f"{out_dir}: output folder cannot be written ({existing} is not writable)")


_Picture = tuple[bytes | None, str | None]
_Result = tuple[dict | None, list[str], list[int], _Picture]


def _evaluate_case(job: _Job) -> _Result:
    """Worker: read one pair, check labels, compute metrics, draw -> (entry or None, problems, labels, picture)."""
    try:
        reference, geometry = read_image(job.reference)
        prediction, _ = read_image(job.prediction)
        reference = as_label_array(reference, job.reference)
        prediction = as_label_array(prediction, job.prediction)
    except UnetrPPError as err:
        return None, [str(err)], [], (None, None)
    prediction = apply_postprocessing(prediction, job.postprocessing)
    if job.label_map is not None:
        prediction = job.label_map.apply(prediction)
    boxes = case_bounding_boxes(reference, prediction, job.threads)
    if job.allowed is not None:
        problems = [
            f"{path}: label value(s) {unknown} not in the protocol's labels {sorted(job.allowed)}"
            for path, found in zip((job.reference, job.prediction), boxes)
            if (unknown := sorted(set(found) - job.allowed))
        ]
        if problems:
            return None, problems, [], (None, None)
    present = sorted(set(boxes[0]) | set(boxes[1]))
    targets = job.targets or tuple(label_target(label) for label in present)
    metrics = (
        compute_case_metrics(reference, prediction, geometry.spacing, targets, job.hd95_unit, job.empty, boxes,
                             job.threads)
        if targets else {}
    )
    entry = {"case": job.case, "reference_file": str(job.reference.absolute()),
             "prediction_file": str(job.prediction.absolute()), "metrics": metrics}
    picture: _Picture = (None, None)
    if job.plots is not None:
        from unetr_pp.evaluation.overlays import case_figure, render

        picture = render(case_figure, job.case, reference, prediction, geometry, targets, job.plots, job.image,
                         metrics)
    return entry, [], present, picture


def _run(jobs: Sequence[_Job], num_processes: int) -> list[_Result]:
    return parallel_map(_evaluate_case, list(jobs), num_processes, "evaluating", "case")


def _plot_jobs(plots: PlotOptions | None, dataset_json: str | Path | None, ref_dir: Path,
               cases: Sequence[str]) -> tuple[PlotOptions | None, dict[str, Path | None]]:
    """The plot options with the CT window decided from dataset.json (if known), and each case's image."""
    if plots is None:
        return None, {}
    from unetr_pp.evaluation.overlays import PlotOptions, dataset_is_ct, find_image

    if plots.ct is None:
        found = Path(dataset_json) if dataset_json is not None else find_dataset_json(ref_dir)
        plots = PlotOptions(plots.images, plots.slices, dataset_is_ct(found))
    return plots, {case: find_image(plots.images, case) for case in cases}


def _write_plots(out_dir: str | Path, results: Sequence[_Result], summary: dict, targets: Sequence[Target],
                 plots: PlotOptions, images: dict[str, Path | None]) -> dict:
    """Write the pictures drawn by the workers and the metric plot -> what summary.md lists about them."""
    from unetr_pp.evaluation.overlays import NO_IMAGE, write_evaluation_plots

    pictures = {entry["case"]: picture for entry, _, _, picture in results}
    title = f"DSC and HD95 per target over {len(pictures)} case(s) (protocol {summary['protocol']})"
    metrics, overlays = write_evaluation_plots(Path(out_dir), pictures, summary, targets, title)
    missing = [case for case, image in images.items() if image is None]
    note = ""
    if plots.images is None:
        note = f"no -img folder given: {NO_IMAGE}"
    elif missing:
        note = f"{len(missing)} case(s) without an image in {plots.images} ({', '.join(missing)}): {NO_IMAGE}"
    if note:
        print(f"note: plots: {note}", file=sys.stderr)
    return {"metrics": metrics, "overlays": overlays, "slices": plots.slices, "note": note}


def evaluate_folders(
    ref_dir: str | Path,
    pred_dir: str | Path,
    protocol: str | None = None,
    labels: Sequence[int] | None = None,
    hd95_unit: str = "mm",
    empty: str = "nan",
    out_dir: str | Path | None = None,
    num_processes: int = DEFAULT_NUM_PROCESSES,
    dataset_json: str | Path | None = None,
    only_predicted: bool = False,
    label_map: str | LabelMap | None = None,
    postprocessing: Sequence[Step] = (),
    plots: PlotOptions | None = None,
) -> dict:
    """Evaluate PRED_DIR against REF_DIR -> the summary dict (also written to `out_dir` when given).

    `protocol`: a name of PROTOCOLS or all-labels/None (labels of `dataset_json`, of a
    dataset.json found beside REF_DIR or one folder up, else every label value present); `labels`
    restricts to these ids; `label_map` ('PRED:REF,...', e.g. '1+2:1') maps predicted labels onto
    reference labels first (external testing); `postprocessing` (largest-component steps, label ids of
    the prediction) is applied to each prediction before that. `plots` also draws `out_dir/plots/<case>.png`
    and `plots/metrics.png` (docs/evaluation.md, "Pictures"); a picture that cannot be drawn is a warning,
    never an error. See docs/evaluation.md for the conventions.
    """
    ref_dir, pred_dir = Path(ref_dir), Path(pred_dir)
    check_options(hd95_unit, empty)
    chosen: Protocol | None = resolve_protocol(protocol, labels, dataset_json, ref_dir)
    if isinstance(label_map, str):
        label_map = parse_label_map(label_map)
    if label_map is not None:
        chosen = restrict_protocol(chosen, label_map)
    pairs = match_cases(ref_dir, pred_dir, only_predicted)
    if out_dir is not None:
        check_output_dir(Path(out_dir))
    elif plots is not None:
        raise UnetrPPError("plots need an output folder (out_dir)")
    check_headers(pairs)
    plots, images = _plot_jobs(plots, dataset_json, ref_dir, [case for case, _, _ in pairs])
    threads = max(1, num_processes // max(len(pairs), 1))  # spare processes become threads within a case
    jobs = [
        _Job(case, ref, pred, chosen.targets if chosen else None, chosen.allowed if chosen else None, hd95_unit, empty,
             label_map, tuple(tuple(step) for step in postprocessing), threads, plots, images.get(case))
        for case, ref, pred in pairs
    ]
    results = _run(jobs, num_processes)
    problems = [p for _, found, _, _ in results for p in found]
    if problems:
        raise problems_error(f"evaluation of {pred_dir} against {ref_dir}", problems)
    cases = [entry for entry, _, _, _ in results]
    if chosen is None:
        present = sorted({label for _, _, found, _ in results for label in found})
        if not present:
            raise UnetrPPError(f"{ref_dir}, {pred_dir}: no foreground label in any reference or prediction")
        targets = [label_target(label) for label in present]
        for entry in cases:
            entry["metrics"] = {t.name: entry["metrics"].get(t.name) or empty_target_metrics(empty) for t in targets}
        protocol_name = "labels present"
    else:
        targets, protocol_name = list(chosen.targets), chosen.name
    summary = build_summary(cases, targets, protocol_name, hd95_unit, empty)
    if out_dir is not None:
        written = _write_plots(out_dir, results, summary, targets, plots, images) if plots is not None else None
        write_reports(summary, targets, out_dir, written)
    return summary
