"""splits_final.json: sklearn-equivalent KFold(5, shuffle, 12345), reuse, user files, presets, fold lookup."""
from __future__ import annotations

import json

import numpy as np
import pytest

from unetr_pp.training.data import fold_cases, kfold_splits, load_or_create_splits
from unetr_pp.utilities.errors import UnetrPPError


def sklearn_kfold(n: int, n_splits: int = 5, seed: int = 12345) -> list[tuple[list[int], list[int]]]:
    """sklearn KFold(shuffle=True) written out from its source: shuffle arange(n) in place with
    RandomState(seed).shuffle, consecutive test blocks of n // k (+1 for the first n % k), train = the rest
    in ascending index order."""
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    out, start = [], 0
    for k in range(n_splits):
        size = n // n_splits + (1 if k < n % n_splits else 0)
        test = indices[start:start + size]
        start += size
        out.append(([i for i in range(n) if i not in set(test.tolist())], test.tolist()))
    return out


def test_kfold_n7_hand_computed_values():
    # RandomState(12345).permutation(7) == [6, 3, 4, 0, 1, 5, 2]; fold sizes 2, 2, 1, 1, 1
    assert np.random.RandomState(12345).permutation(7).tolist() == [6, 3, 4, 0, 1, 5, 2]
    ids = [f"case_{i}" for i in (3, 0, 6, 1, 5, 2, 4)]  # unsorted input: the ids are sorted first
    splits = kfold_splits(ids)
    assert [s["val"] for s in splits] == [["case_6", "case_3"], ["case_4", "case_0"], ["case_1"], ["case_5"],
                                          ["case_2"]]
    assert splits[0]["train"] == ["case_0", "case_1", "case_2", "case_4", "case_5"]
    assert splits[2]["train"] == ["case_0", "case_2", "case_3", "case_4", "case_5", "case_6"]


@pytest.mark.parametrize("n", [7, 30])
def test_kfold_matches_sklearn_algorithm(n):
    ids = sorted(f"img{i:04d}" for i in range(1, n + 1))
    splits = kfold_splits(ids)
    expected = sklearn_kfold(n)
    assert [len(s["val"]) for s in splits] == [len(t) for _, t in expected]
    assert sum(len(s["val"]) for s in splits) == n
    for split, (train_idx, val_idx) in zip(splits, expected):
        assert split["val"] == [ids[i] for i in val_idx]
        assert split["train"] == [ids[i] for i in train_idx]
        assert set(split["train"]).isdisjoint(split["val"])
    if n == 30:
        assert splits[0]["val"] == ["img0027", "img0013", "img0019", "img0004", "img0016", "img0009"]


def test_created_once_then_reused(tmp_path):
    ids = [f"c{i:02d}" for i in range(10)]
    splits = load_or_create_splits(tmp_path, ids)
    path = tmp_path / "splits_final.json"
    assert json.loads(path.read_text()) == splits == kfold_splits(ids)
    # a later call with more cases reuses the file rather than re-splitting
    assert load_or_create_splits(tmp_path, ids + ["c99"]) == splits
    assert not list(tmp_path.glob(".*"))  # no temp files left by the atomic write


def test_user_file_is_honoured(tmp_path):
    ids = ["a", "b", "c"]
    user = [{"train": ["a", "b"], "val": ["c"]}, {"train": ["c"], "val": ["a", "b"]}]
    (tmp_path / "splits_final.json").write_text(json.dumps(user))
    splits = load_or_create_splits(tmp_path, ids)  # fewer than 5 cases is fine for a user file
    assert splits == user
    assert fold_cases(splits, 1, ids) == (["c"], ["a", "b"])


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"train": []}', "malformed splits file"),
    ('[{"train": ["a"]}]', 'fold 0: expected {"train": [...], "val": [...]}'),
    ('[{"train": ["a", "zz"], "val": ["b"]}]', "fold 0: unknown case id(s) not in the preprocessed data: zz"),
])
def test_bad_file_names_the_file(tmp_path, content, message):
    path = tmp_path / "splits_final.json"
    path.write_text(content)
    with pytest.raises(UnetrPPError) as err:
        load_or_create_splits(tmp_path, ["a", "b", "c", "d", "e"])
    assert str(path) in str(err.value) and message in str(err.value)


def test_fewer_than_five_cases_suggests_fold_all(tmp_path):
    with pytest.raises(UnetrPPError, match="fold 'all'"):
        load_or_create_splits(tmp_path, ["a", "b", "c", "d"])
    assert not (tmp_path / "splits_final.json").exists()


def test_preset_fold0(tmp_path, capsys):
    val = ["img0001", "img0002", "img0003", "img0004", "img0008", "img0022", "img0025", "img0029", "img0032",
           "img0035", "img0036", "img0038"]
    ids = [f"img{i:04d}" for i in range(1, 41)]
    splits = load_or_create_splits(tmp_path, ids, {"0": {"val": val}})
    assert splits[0]["val"] == val
    assert splits[0]["train"] == [i for i in ids if i not in val] and len(splits[0]["train"]) == 28
    assert splits[1:] == kfold_splits(ids)[1:]
    assert json.loads((tmp_path / "splits_final.json").read_text()) == splits
    # the preset names cases this task does not have -> KFold fold 0 kept, with a warning
    fewer = ids[:30]
    splits = load_or_create_splits(tmp_path / "other", fewer, {"0": {"val": val}})
    assert splits == kfold_splits(fewer)
    assert "warning: preset split for fold 0 not used (case id(s) not found: img0032" in capsys.readouterr().err


def test_fold_all_and_out_of_range():
    ids = ["b", "a", "c"]
    assert fold_cases([], "all", ids) == (["a", "b", "c"], ["a", "b", "c"])
    splits = kfold_splits([f"c{i}" for i in range(6)])
    assert fold_cases(splits, "3", [f"c{i}" for i in range(6)]) == (splits[3]["train"], splits[3]["val"])
    with pytest.raises(UnetrPPError, match=r"fold 5 is outside the split: splits_final.json has 5 folds \(0-4\)"):
        fold_cases(splits, 5, [f"c{i}" for i in range(6)])
    with pytest.raises(UnetrPPError, match="not a fold number"):
        fold_cases(splits, "x", ids)
