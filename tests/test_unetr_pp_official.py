"""Loading official UNETR++ `.model` checkpoints: mock files in the official format, prefixes, bad files."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from unetr_pp.networks.official import load_official_unetr_pp, read_checkpoint_state_dict
from unetr_pp.utilities.errors import UnetrPPError

from reference_probe import REFERENCE, probe_module


def official_checkpoint(state_dict: dict) -> dict:
    """A dict shaped like the official trainers' save_checkpoint output (numpy scalars in plot/best stuff)."""
    n_params = sum(1 for k in state_dict if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    return {
        "epoch": 1000,
        "state_dict": state_dict,
        "optimizer_state_dict": {"state": {}, "param_groups": [{
            "lr": 1e-2, "momentum": 0.99, "dampening": 0, "weight_decay": 3e-5, "nesterov": True,
            "params": list(range(n_params))}]},
        "lr_scheduler_state_dict": None,
        "plot_stuff": ([np.float64(0.5), np.float64(0.4)], [np.float64(0.6)], [], [np.float64(0.71)]),
        "best_stuff": (998, np.float64(-0.61), np.float64(0.83)),
    }


def layout_state_dict(dataset: str) -> dict:
    """Tiny stand-in tensors with the official layout's shapes (zero-stride views: the file stays small)."""
    entries = json.loads((REFERENCE / f"unetr_pp_official_{dataset}.json").read_text())["state_dict"]
    return {key: torch.zeros((), dtype=getattr(torch, dtype)).expand(shape) for key, shape, dtype in entries}


@pytest.fixture(scope="module")
def synapse_probe() -> dict:
    return probe_module().probe_state_dict(str(REFERENCE / "unetr_pp_official_synapse.json"))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loads_official_model_file_strictly(tmp_path, synapse_probe, prefix):
    path = tmp_path / "model_final_checkpoint.model"
    torch.save(official_checkpoint({prefix + k: v for k, v in synapse_probe.items()}), path)
    with pytest.raises(pickle.UnpicklingError):  # the torch>=2.6 default rejects the numpy scalars
        torch.load(path, weights_only=True)
    net = load_official_unetr_pp("synapse", path)
    assert not net.training and net.deep_supervision
    loaded = net.state_dict()
    assert list(loaded) == list(synapse_probe)
    for key, value in synapse_probe.items():
        assert torch.equal(loaded[key], value), key


def test_head_size_is_read_from_the_checkpoint(tmp_path):
    state_dict = layout_state_dict("tumor")
    for key in ("out1", "out2", "out3"):
        weight = state_dict[f"{key}.conv.conv.weight"]
        state_dict[f"{key}.conv.conv.weight"] = torch.zeros(()).expand(6, *weight.shape[1:])
        state_dict[f"{key}.conv.conv.bias"] = torch.zeros(()).expand(6)
    path = tmp_path / "tumor.model"
    torch.save(state_dict, path)  # a bare state-dict file is accepted too
    net = load_official_unetr_pp("tumor", path)
    assert net.out1.conv.conv.weight.shape[0] == 6 and net.patch_size == (128, 128, 128)


def test_wrong_dataset_file_names_keys_and_the_matching_dataset(tmp_path):
    path = tmp_path / "acdc_final.model"
    torch.save(official_checkpoint(layout_state_dict("acdc")), path)
    with pytest.raises(UnetrPPError) as err:
        load_official_unetr_pp("synapse", path)
    message = str(err.value)
    assert f"{path}: does not fit the official 'synapse' UNETR++; it fits the official 'acdc' configuration" in message
    assert "unexpected key: unetr_pp_encoder.stages.0.0.conv52.conv1.conv.weight" in message
    assert ("shape mismatch: unetr_pp_encoder.downsample_layers.0.0.conv.weight: file [32, 1, 1, 4, 4] "
            "vs model [32, 1, 2, 4, 4]") in message
    assert "more unexpected key(s)" in message


def test_missing_keys_are_listed(tmp_path):
    state_dict = layout_state_dict("tumor")
    del state_dict["decoder2.decoder_block.0.conv1.conv.weight"]
    path = tmp_path / "partial.model"
    torch.save(official_checkpoint(state_dict), path)
    with pytest.raises(UnetrPPError, match="missing key: decoder2.decoder_block.0.conv1.conv.weight"):
        load_official_unetr_pp("tumor", path)


def test_corrupt_missing_and_foreign_files(tmp_path):
    good = tmp_path / "good.model"
    torch.save(official_checkpoint({"out1.conv.conv.bias": torch.zeros(14)}), good)
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UnetrPPError, match=f"{truncated}: not a readable torch checkpoint"):
        load_official_unetr_pp("synapse", truncated)
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(UnetrPPError, match=f"{garbage}: not a readable torch checkpoint"):
        read_checkpoint_state_dict(garbage)
    with pytest.raises(UnetrPPError, match="nothing.model: checkpoint file not found"):
        load_official_unetr_pp("synapse", tmp_path / "nothing.model")
    foreign = tmp_path / "foreign.model"
    torch.save({"epoch": 3, "weights": [1, 2]}, foreign)
    with pytest.raises(UnetrPPError, match=r"no 'state_dict' in the checkpoint \(found \['epoch', 'weights'\]\)"):
        load_official_unetr_pp("synapse", foreign)
    with pytest.raises(UnetrPPError, match="no official UNETR\\+\\+ configuration 'brats'"):
        load_official_unetr_pp("brats", good)
