"""onnxruntime as the sliding window's network: each fold exported once to ONNX, cached beside its checkpoint.

`unetr_pp_predict --backend onnxruntime` loads the folds as usual, then `onnxruntime_model` swaps every
torch network for an `OnnxRuntimeNetwork` reading `fold_<k>/<checkpoint>.onnx`. That file (and its stamp
`<checkpoint>.onnx.json`) is written on first use and again whenever the checkpoint file, the patch size,
the opset or the torch version changes. Sliding window, blending, TTA and export stay the torch path's.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from unetr_pp.inference.deploy import DEFAULT_OPSET, export_network, require_deploy
from unetr_pp.inference.models import TrainedModel, checkpoint_file_name
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import load_json, save_json

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


class OnnxRuntimeNetwork:
    """An ONNX model run by onnxruntime: (B, C, *patch) float32 tensor -> (B, K, *patch) logits on the input's device.

    CPU execution provider; CUDA first when `device` is CUDA and onnxruntime has that provider. Intra-op
    threads = torch's thread count; idle threads sleep instead of spinning (as OMP_WAIT_POLICY=PASSIVE does
    for torch in the CLI), so other work on the cores is not slowed. Without `arena`, CPU tensors come from the
    process's malloc as torch's do (so `keep_freed_memory` applies to both) instead of onnxruntime's arena:
    with the arena, a process running both on the nnU-Net UNet grew past 7 GB, without it peaked at 5.2 GB
    (docs/benchmarks.md, "ONNX Runtime").
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", spinning: bool = False,
                 arena: bool = False) -> None:
        ort = require_deploy("onnxruntime")
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = arena
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        providers = [CPU_PROVIDER]
        if torch.device(device).type == "cuda" and CUDA_PROVIDER in ort.get_available_providers():
            providers.insert(0, CUDA_PROVIDER)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:
            raise UnetrPPError(f"{path}: onnxruntime cannot load the model ({type(err).__name__}: "
                               f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *patch) -> (B, K, *patch) float32 logits."""
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(out).to(x.device)


def _stamp(checkpoint: Path, input_shape: Sequence[int], opset: int) -> dict:
    stat = checkpoint.stat()
    return {"checkpoint": checkpoint.name, "checkpoint_size": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns,
            "input_shape": list(input_shape), "opset": opset, "torch_version": torch.__version__}


def cached_onnx(network: nn.Module, checkpoint: Path, input_shape: Sequence[int], opset: int = DEFAULT_OPSET,
                name: str = "network") -> Path:
    """`<checkpoint stem>.onnx` beside `checkpoint`, exported from `network` unless an up-to-date one exists."""
    stem = checkpoint.name[: -len(".model")] if checkpoint.name.endswith(".model") else checkpoint.name
    path = checkpoint.with_name(stem + ".onnx")
    stamp_path = path.with_name(path.name + ".json")
    stamp = _stamp(checkpoint, input_shape, opset)
    if path.is_file() and stamp_path.is_file():
        saved = load_json(stamp_path)
        if {k: saved.get(k) for k in stamp} == stamp:
            return path
    if not os.access(checkpoint.parent, os.W_OK):
        raise UnetrPPError(f"{checkpoint.parent}: not writable; the onnxruntime backend caches {path.name} there "
                           "(or export with unetr_pp_export and serve that folder)")
    difference = export_network(network, path, "onnx", input_shape, opset, name)
    save_json({**stamp, "max_abs_difference_to_torch": difference}, stamp_path)
    return path


def require_onnxruntime() -> None:
    """Raise one line naming the install command unless onnx and onnxruntime can be imported."""
    require_deploy("onnx")
    require_deploy("onnxruntime")


def onnxruntime_model(model: TrainedModel, checkpoint: str, device: str | torch.device = "cpu",
                      opset: int = DEFAULT_OPSET) -> TrainedModel:
    """`model` with each fold's network replaced by onnxruntime running its cached ONNX export."""
    require_onnxruntime()
    name = checkpoint_file_name(checkpoint)
    input_shape = [model.config.num_input_channels, *model.config.patch_size]
    networks = []
    for fold, network in zip(model.folds, model.networks):
        path = cached_onnx(network, model.folder / f"fold_{fold}" / name, input_shape, opset, model.network_name)
        networks.append(OnnxRuntimeNetwork(path, device))
    return dataclasses.replace(model, networks=networks)
