"""Checkpoint files: atomic save + sidecar, damaged-newest fallback, identity mismatch, pretrained weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from unetr_pp.training.checkpoints import (REQUIRED_KEYS, find_resume_checkpoint, load_pretrained_weights,
                                           read_checkpoint, save_checkpoint)
from unetr_pp.utilities.errors import UnetrPPError

IDENTITY = {"trainer": "t", "network": "nnunet", "configuration": "3d_fullres", "plans_identifier": "p",
            "task": "Task001_X", "fold": "0", "plans": {"a": 1}}


def content(epoch: int, value: float = 0.0) -> dict:
    out = {key: None for key in REQUIRED_KEYS}
    out.update(epoch=epoch, state_dict={"w": torch.full((2,), value)}, plot_stuff={"train_loss": [1.0] * epoch})
    return out


def test_save_and_read_round_trip(tmp_path):
    save_checkpoint(tmp_path / "model_latest.model", content(3, 1.5), IDENTITY)
    loaded = read_checkpoint(tmp_path / "model_latest.model")
    assert loaded.content["epoch"] == 3 and loaded.sidecar["epoch"] == 3
    assert loaded.sidecar["plans"] == {"a": 1}
    assert torch.equal(loaded.content["state_dict"]["w"], torch.full((2,), 1.5))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_newest_valid_checkpoint_and_damaged_fallback(tmp_path):
    save_checkpoint(tmp_path / "model_best.model", content(2), IDENTITY)
    save_checkpoint(tmp_path / "model_latest.model", content(4), IDENTITY)
    found, skipped = find_resume_checkpoint(tmp_path, IDENTITY)
    assert found.path.name == "model_latest.model" and skipped == []
    data = (tmp_path / "model_latest.model").read_bytes()
    (tmp_path / "model_latest.model").write_bytes(data[: len(data) // 2])  # truncated by a crash
    found, skipped = find_resume_checkpoint(tmp_path, IDENTITY)
    assert found.path.name == "model_best.model" and found.content["epoch"] == 2
    assert len(skipped) == 1 and "model_latest.model: not a readable checkpoint" in skipped[0]


def test_sidecar_epoch_mismatch_is_damage(tmp_path):
    save_checkpoint(tmp_path / "model_best.model", content(1), IDENTITY)
    save_checkpoint(tmp_path / "model_latest.model", content(5), IDENTITY)
    # crash between the checkpoint rename and the sidecar write: the sidecar still describes epoch 4
    sidecar = tmp_path / "model_latest.model.json"
    sidecar.write_text(sidecar.read_text().replace('"epoch": 5', '"epoch": 4'))
    found, skipped = find_resume_checkpoint(tmp_path, IDENTITY)
    assert found.content["epoch"] == 1
    assert "sidecar epoch 4 does not match the checkpoint's epoch 5" in skipped[0]


def test_other_trainer_or_plans_is_an_error(tmp_path):
    save_checkpoint(tmp_path / "model_latest.model", content(1), IDENTITY)
    with pytest.raises(UnetrPPError, match="different trainer 't' \\(this run: 'u'\\)"):
        find_resume_checkpoint(tmp_path, {**IDENTITY, "trainer": "u"})
    with pytest.raises(UnetrPPError, match="different plans"):
        find_resume_checkpoint(tmp_path, {**IDENTITY, "plans": {"a": 2}})
    assert find_resume_checkpoint(tmp_path / "nothing", IDENTITY) == (None, [])


def test_pretrained_weights_copy_matching_shapes(tmp_path):
    source = nn.Sequential(nn.Conv3d(1, 4, 3), nn.Conv3d(4, 2, 1))
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.model")
    target = nn.Sequential(nn.Conv3d(1, 4, 3), nn.Conv3d(4, 3, 1))
    report = load_pretrained_weights(target, tmp_path / "w.model")
    assert sorted(report["loaded"]) == ["0.bias", "0.weight"]
    assert torch.equal(target[0].weight, source[0].weight)
    assert {"key": "1.weight", "file_shape": [2, 4, 1, 1, 1], "network_shape": [3, 4, 1, 1, 1]} in report["shape_mismatch"]
    assert report["not_in_file"] == [] and report["skipped"] == []
    with pytest.raises(UnetrPPError, match="no weight of the checkpoint fits"):
        load_pretrained_weights(nn.Linear(2, 2), tmp_path / "w.model")
