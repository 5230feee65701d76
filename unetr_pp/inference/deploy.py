"""Trained folds out as ONNX or TorchScript, with the plans and a JSON describing inputs, outputs and preprocessing.

Shapes: the exported model maps `image` (B, C, *patch) float32 -> `logits` (B, K, *patch) float32. The
batch axis is dynamic, the spatial axes are fixed to the plans' patch size: UNETR++ and UNETR hold
positional embeddings (and UNETR++ its E/F projections) sized for that patch, and the sliding window only
ever feeds whole patches. Every export is checked against the torch network on a random batch of 2.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

import torch
from torch import nn
from tqdm import tqdm

from unetr_pp.inference.models import TrainedModel
from unetr_pp.inference.sliding_window import Network
from unetr_pp.io.plans import Plans
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import atomic_path, load_json, publish_folder, save_json

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 17
MIN_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
IO_FILE = "model_io.json"
PLANS_FILE = "plans.json"
DEPLOY_INSTALL = 'pip install "unetr_pp[deploy]" (in a checkout: pip install -e ".[deploy]")'
VERIFY_BATCH = 2
SIGMA_SCALE = 0.125


def require_deploy(module: str) -> ModuleType:
    """Import `module` (onnx, onnxruntime) of the deploy extra, or raise one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UnetrPPError(f"{module} is not installed; install the deploy extra: {DEPLOY_INSTALL}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence warnings and the exporter's C++ graph dumps on fd 2 (they are not for the user)."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def deployable(network: nn.Module) -> nn.Module:
    """An eval-mode copy ready to trace: RepUX-Net blocks folded (BFM and BatchNorm into plain convs)."""
    from unetr_pp.networks.repuxnet import reparameterize

    return reparameterize(copy.deepcopy(network).eval().cpu())


def _export_onnx(network: nn.Module, example: torch.Tensor, path: Path, opset: int, name: str) -> None:
    onnx = require_deploy("onnx")
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    try:
        with _quiet():
            torch.onnx.export(network, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes)
        onnx.checker.check_model(str(path))
    except Exception as err:
        raise UnetrPPError(f"network {name!r} cannot be exported to ONNX at opset {opset}: {_first_line(err)} "
                           "(try unetr_pp_export with a higher --opset, or --format torchscript)") from None


def _export_torchscript(network: nn.Module, example: torch.Tensor, path: Path, name: str) -> None:
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(network, example, check_trace=False)
        torch.jit.save(traced, str(path))
    except Exception as err:
        raise UnetrPPError(f"network {name!r} cannot be exported to TorchScript: {_first_line(err)}") from None


def load_exported(path: str | os.PathLike, fmt: str, device: str | torch.device = "cpu") -> Network:
    """An exported model as a callable (B, C, *patch) float32 -> (B, K, *patch) logits."""
    if fmt == "onnx":
        from unetr_pp.inference.runtime import OnnxRuntimeNetwork

        return OnnxRuntimeNetwork(path, device)
    module = torch.jit.load(str(path), map_location=torch.device(device))
    return module.eval()


def export_network(network: nn.Module, path: str | os.PathLike, fmt: str, input_shape: Sequence[int],
                   opset: int = DEFAULT_OPSET, name: str = "network") -> float:
    """Write `network` as ONNX or TorchScript for input (B, *input_shape), B dynamic; return max |export - torch|.

    `input_shape` is (C, *patch). The file is written atomically; it is checked on a random batch of 2.
    """
    if fmt not in FORMATS:
        raise UnetrPPError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx" and opset < MIN_OPSET:
        raise UnetrPPError(f"ONNX opset {opset} is too old; use {MIN_OPSET} or newer")
    network = deployable(network)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(1, *input_shape, generator=generator)
    check = torch.randn(VERIFY_BATCH, *input_shape, generator=generator)
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if fmt == "onnx":
            _export_onnx(network, example, tmp, opset, name)
        else:
            _export_torchscript(network, example, tmp, name)
        with torch.inference_mode():
            expected = network(check)
            try:
                got = load_exported(tmp, fmt)(check)
            except Exception as err:
                raise UnetrPPError(f"network {name!r} was exported as {fmt} but the export does not run: "
                                   f"{_first_line(err)}") from None
    return float((got - expected).abs().max())


def describe_model(model: TrainedModel, fmt: str, opset: int | None, checkpoint: str,
                   differences: dict[str, float]) -> dict:
    """The `model_io.json` of an export: files, input/output tensors, preprocessing and sliding-window settings."""
    plans, config = model.plans.to_json(), model.config.to_json()
    patch = list(model.config.patch_size)
    regions = plans["regions_class_order"]
    channels = model.config.num_input_channels
    return {
        "format": fmt, "opset": opset, "torch_version": torch.__version__, "network": model.network_name,
        "configuration": model.configuration, "checkpoint": checkpoint,
        "folds": {fold: f"fold_{fold}/{MODEL_FILES[fmt]}" for fold in model.folds},
        "max_abs_difference_to_torch": differences,
        "input": {"name": INPUT_NAME, "shape": ["batch", channels, *patch], "dtype": "float32",
                  "axes": "batch, channel, then z y x in the plans' transposed order (transpose_forward)",
                  "channels": plans["channel_names"]},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", int(config["num_classes"]), *patch], "dtype": "float32",
                   "meaning": "logits; " + ("sigmoid per region, regions_class_order gives each region's label"
                                            if regions is not None else "softmax over classes, argmax = label"),
                   "labels": plans["labels"], "regions": plans["regions"], "regions_class_order": regions},
        "dynamic_axes": {"batch": "axis 0 of input and output; spatial axes are fixed to the patch size"},
        "preprocessing": {
            "transpose_forward": plans["transpose_forward"], "spacing": config["spacing"],
            "normalization_schemes": config["normalization_schemes"],
            "use_mask_for_norm": config["use_mask_for_norm"],
            "intensity_properties": plans["foreground_intensity_properties_per_channel"],
            "resampling": config["resampling"],
            "steps": "crop to the nonzero box, transpose, resample to spacing, normalize per channel "
                     "(docs/preprocessing.md); the plans are in plans.json",
        },
        "sliding_window": {"patch_size": patch, "step_size": 0.5, "gaussian_sigma_scale": SIGMA_SCALE,
                           "blending": "logits weighted by a Gaussian (sigma = patch * 0.125), divided by the "
                                       "summed weights", "mirror_axes": [0, 1, 2],
                           "ensemble": "mean of the folds' probabilities"},
    }


def _prepare_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise UnetrPPError(f"{output}: -o exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise UnetrPPError(f"{output}: output folder is not empty; choose another -o or add --overwrite")


def export_trained_model(model: TrainedModel, output: str | os.PathLike, fmt: str, checkpoint: str,
                         opset: int = DEFAULT_OPSET, overwrite: bool = False) -> dict:
    """Write every fold of `model` into `output` (fold_<k>/model.onnx|.pt, plans.json, model_io.json); return the JSON.

    Nothing appears in `output` unless every fold exported: the folder is built beside it and renamed.
    """
    if fmt not in FORMATS:
        raise UnetrPPError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_deploy("onnx")
        require_deploy("onnxruntime")
    output = Path(output)
    _prepare_output(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        input_shape = [model.config.num_input_channels, *model.config.patch_size]
        differences = {}
        for fold, network in tqdm(list(zip(model.folds, model.networks)), desc=f"exporting {fmt}", unit="fold"):
            path = staging / f"fold_{fold}" / MODEL_FILES[fmt]
            differences[fold] = export_network(network, path, fmt, input_shape, opset, model.network_name)
        description = describe_model(model, fmt, opset if fmt == "onnx" else None, checkpoint, differences)
        model.plans.save(staging / PLANS_FILE)
        save_json(description, staging / IO_FILE)
        publish_folder(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return description



def load_exported_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> TrainedModel:
    """An `unetr_pp_export` folder as a TrainedModel (onnxruntime or TorchScript per fold) for `predict_folder`."""
    folder = Path(folder)
    description, plans = load_json(folder / IO_FILE), Plans.load(folder / PLANS_FILE)
    missing = [str(folder / rel) for rel in description.get("folds", {}).values() if not (folder / rel).is_file()]
    if missing or not description.get("folds"):
        raise UnetrPPError(f"{folder}: incomplete export, missing {', '.join(missing) or 'the folds'}")
    folds = list(description["folds"])
    networks = [load_exported(folder / description["folds"][f], description["format"], device) for f in folds]
    return TrainedModel(folder, folds, networks, plans, description["configuration"], description["network"])
