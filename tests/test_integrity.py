import json

import numpy as np
import pytest
import SimpleITK as sitk

from unetr_pp.dataset import integrity
from unetr_pp.dataset.integrity import find_integrity_problems, verify_dataset_integrity
from unetr_pp.io import Geometry, write_image
from unetr_pp.utilities.errors import UnetrPPError

SHAPE = (8, 16, 16)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
GEOMETRY = Geometry((3.0, 0.8, 0.8), (-10.0, 20.0, 5.0), IDENTITY)
LABELS = {"0": "background", "1": "liver", "2": "spleen"}


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 100, SHAPE).astype(np.float32)


def _label() -> np.ndarray:
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 3:8, 3:8] = 1
    label[4:7, 9:14, 9:14] = 2
    return label


def _make_task(root, n_cases=3, channels=("CT",), version=1, test_cases=1):
    """A clean tiny raw task: `n_cases` training cases of 8x16x16 voxels (+ test cases)."""
    root.mkdir(parents=True)
    for c in range(n_cases + test_cases):
        folder = "imagesTr" if c < n_cases else "imagesTs"
        for ch in range(len(channels)):
            write_image(_image(10 * c + ch), GEOMETRY, root / folder / f"case{c}_{ch:04d}.nii.gz")
        if c < n_cases:
            write_image(_label(), GEOMETRY, root / "labelsTr" / f"case{c}.nii.gz")
    if version == 1:
        obj = {
            "name": "Tiny", "modality": {str(i): n for i, n in enumerate(channels)}, "labels": LABELS,
            "numTraining": n_cases,
            "training": [{"image": f"./imagesTr/case{c}.nii.gz", "label": f"./labelsTr/case{c}.nii.gz"}
                         for c in range(n_cases)],
            "test": [f"./imagesTs/case{c}.nii.gz" for c in range(n_cases, n_cases + test_cases)],
        }
    else:
        obj = {"channel_names": {str(i): n for i, n in enumerate(channels)},
               "labels": {v: int(k) for k, v in LABELS.items()}, "numTraining": n_cases, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(obj))
    return root


def _snapshot(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*"))


def _only_problem(root):
    problems = find_integrity_problems(root, num_processes=1)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize("version", [1, 2])
def test_clean_task_passes_and_returns_info(tmp_path, version):
    root = _make_task(tmp_path / "Task001_Tiny", channels=("T1", "T2"), version=version)
    assert find_integrity_problems(root, num_processes=1) == []
    info = verify_dataset_integrity(root, num_processes=1)
    assert [c.case_id for c in info.training_cases] == ["case0", "case1", "case2"]
    assert info.num_channels == 2 and info.format_version == version


def test_missing_channel_and_label(tmp_path):
    root = _make_task(tmp_path / "T", channels=("T1", "T2"))
    (root / "imagesTr" / "case1_0001.nii.gz").unlink()
    assert _only_problem(root) == f"{root}/imagesTr/case1_0001.nii.gz: missing channel 1 (T2) of case 'case1'"
    (root / "imagesTr" / "case1_0001.nii.gz").symlink_to(root / "imagesTr" / "case1_0000.nii.gz")
    (root / "labelsTr" / "case2.nii.gz").unlink()
    assert _only_problem(root) == f"{root}/labelsTr/case2.nii.gz: missing label of case 'case2'"


def test_v1_unsuffixed_image_gets_a_hint(tmp_path):
    root = _make_task(tmp_path / "T")
    (root / "imagesTr" / "case0_0000.nii.gz").rename(root / "imagesTr" / "case0.nii.gz")
    problem = _only_problem(root)
    assert problem.startswith(f"{root}/imagesTr/case0_0000.nii.gz: missing channel 0 (CT) of case 'case0'; "
                              "found case0.nii.gz: images must be named <case>_XXXX.nii.gz")
    assert "rename a 3D image to case0_0000.nii.gz" in problem


def test_v1_entry_naming_a_channel_file_gets_a_hint(tmp_path):
    root = _make_task(tmp_path / "T")
    obj = json.loads((root / "dataset.json").read_text())
    obj["training"][1]["image"] = "./imagesTr/case1_0000.nii.gz"
    (root / "dataset.json").write_text(json.dumps(obj))
    problems = find_integrity_problems(root, num_processes=1)
    assert problems[0] == (
        f"{root}/imagesTr/case1_0000_0000.nii.gz: missing channel 0 (CT) of case 'case1_0000'; dataset.json "
        "names the channel file case1_0000.nii.gz itself: v1 entries name the case without the channel suffix "
        "(./imagesTr/case1.nii.gz)")
    assert problems[1] == f"{root}/labelsTr/case1_0000.nii.gz: missing label of case 'case1_0000'"
    assert problems[2].startswith(f"{root}/labelsTr/case1.nii.gz: stray file")
    assert len(problems) == 3


def test_image_label_shape_mismatch(tmp_path):
    root = _make_task(tmp_path / "T")
    write_image(np.zeros((8, 16, 15), np.uint8), GEOMETRY, root / "labelsTr" / "case1.nii.gz")
    assert _only_problem(root) == (f"{root}/labelsTr/case1.nii.gz: label shape (8, 16, 15) differs from image "
                                   "shape (8, 16, 16) of case1_0000.nii.gz")


@pytest.mark.parametrize("geometry, expected", [
    (Geometry((2.5, 0.8, 0.8), GEOMETRY.itk_origin, IDENTITY),
     "spacing (z, y, x) [2.5, 0.8, 0.8] differs from [3.0, 0.8, 0.8]"),
    (Geometry(GEOMETRY.spacing, (-10.0, 20.0, 7.0), IDENTITY),
     "origin (ITK order) [-10.0, 20.0, 7.0] differs from [-10.0, 20.0, 5.0]"),
    (Geometry(GEOMETRY.spacing, GEOMETRY.itk_origin, (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)),
     "direction (ITK order) [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0] differs from"),
])
def test_label_geometry_mismatch(tmp_path, geometry, expected):
    root = _make_task(tmp_path / "T")
    write_image(_label(), geometry, root / "labelsTr" / "case0.nii.gz")
    problem = _only_problem(root)
    assert problem.startswith(f"{root}/labelsTr/case0.nii.gz: {expected}")
    assert problem.endswith("of case0_0000.nii.gz")


def test_tiny_geometry_differences_are_tolerated(tmp_path):
    root = _make_task(tmp_path / "T")
    write_image(_label(), Geometry((3.0, 0.8, 0.80001), (-10.0, 20.0, 5.00001), IDENTITY),
                root / "labelsTr" / "case0.nii.gz")
    assert find_integrity_problems(root, num_processes=1) == []


def test_channel_geometry_and_shape_mismatch(tmp_path):
    root = _make_task(tmp_path / "T", channels=("T1", "T2"))
    write_image(_image(1), Geometry((3.0, 0.9, 0.8), GEOMETRY.itk_origin, IDENTITY),
                root / "imagesTr" / "case0_0001.nii.gz")
    write_image(_image(2)[:, :, :12], GEOMETRY, root / "imagesTr" / "case2_0001.nii.gz")
    problems = find_integrity_problems(root, num_processes=1)
    assert problems == [
        f"{root}/imagesTr/case0_0001.nii.gz: spacing (z, y, x) [3.0, 0.9, 0.8] differs from [3.0, 0.8, 0.8] "
        "of case0_0000.nii.gz",
        f"{root}/imagesTr/case2_0001.nii.gz: shape (8, 16, 12) differs from (8, 16, 16) of case2_0000.nii.gz",
    ]


def test_undeclared_label_values_are_listed(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "BINCOUNT_CHUNK", 100)  # count values over several chunks
    root = _make_task(tmp_path / "T")
    label = _label()
    label[0, 0, 0], label[-1, -1, -1] = 7, 13
    write_image(label, GEOMETRY, root / "labelsTr" / "case2.nii.gz")
    assert _only_problem(root) == (f"{root}/labelsTr/case2.nii.gz: label values [7, 13] are not declared in "
                                   "dataset.json (declared: [0, 1, 2])")
    write_image(label.astype(np.float32) + 0.5, GEOMETRY, root / "labelsTr" / "case2.nii.gz")
    assert "label holds non-integer values" in _only_problem(root)


def test_nan_and_inf_in_image(tmp_path):
    root = _make_task(tmp_path / "T")
    image = _image(0)
    image[0, 0, :3] = np.nan
    image[1, 1, 1] = np.inf
    write_image(image, GEOMETRY, root / "imagesTr" / "case0_0000.nii.gz")
    assert _only_problem(root) == f"{root}/imagesTr/case0_0000.nii.gz: image holds 3 NaN and 1 inf voxels"


def test_4d_and_2d_images(tmp_path):
    root = _make_task(tmp_path / "T")
    four_d = sitk.JoinSeries([sitk.GetImageFromArray(_image(0)), sitk.GetImageFromArray(_image(1))])
    sitk.WriteImage(four_d, str(root / "imagesTr" / "case0_0000.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(_image(0)[0]), str(root / "imagesTr" / "case1_0000.nii.gz"))
    problems = find_integrity_problems(root, num_processes=1)
    assert problems == [
        f"{root}/imagesTr/case0_0000.nii.gz: image is 4D (array shape (2, 8, 16, 16)), expected 3D with one "
        "file per channel; an MSD task keeps all channels in one 4D file: convert it with "
        "`unetr_pp_convert_task --source msd`",
        f"{root}/imagesTr/case1_0000.nii.gz: image is 2D (array shape (16, 16)), expected 3D",
    ]


def test_corrupt_and_truncated_files(tmp_path):
    root = _make_task(tmp_path / "T")
    (root / "imagesTr" / "case0_0000.nii.gz").write_bytes(b"\x1f\x8b garbage, not gzip at all")
    label_path = root / "labelsTr" / "case1.nii.gz"
    label_path.write_bytes(label_path.read_bytes()[:-40])
    problems = find_integrity_problems(root, num_processes=1)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{root}/imagesTr/case0_0000.nii.gz: cannot read image")
    assert problems[1].startswith(f"{root}/labelsTr/case1.nii.gz: ") and "truncated" in problems[1]


@pytest.mark.parametrize("text, expected", [
    ("{not json", "dataset.json: not valid JSON (line 1, column 2"),
    ('{"name": "x"}', "dataset.json: missing keys"),
    ('{"modality": {"0": "CT"}, "labels": {"0": "background"}}', "dataset.json: 'training' must be a list"),
])
def test_invalid_dataset_json(tmp_path, text, expected):
    root = _make_task(tmp_path / "T")
    (root / "dataset.json").write_text(text)
    problem = _only_problem(root)
    assert problem.startswith(str(root / "dataset.json")) and expected in problem
    with pytest.raises(UnetrPPError, match="dataset integrity check failed: 1 problem"):
        verify_dataset_integrity(root, num_processes=1)


def test_num_training_mismatch_and_missing_imagestr(tmp_path):
    root = _make_task(tmp_path / "T")
    obj = json.loads((root / "dataset.json").read_text())
    obj["numTraining"] = 5
    (root / "dataset.json").write_text(json.dumps(obj))
    assert _only_problem(root) == f"{root}/dataset.json: numTraining is 5 but 3 training case(s) are listed in 'training'"
    for path in (root / "imagesTr").iterdir():
        path.unlink()
    assert find_integrity_problems(root, num_processes=1)[1] == f"{root}/imagesTr: folder is empty (no training images)"
    (root / "imagesTr").rmdir()
    assert find_integrity_problems(root, num_processes=1)[1] == (f"{root}/imagesTr: folder not found "
                                                                 "(training images go here)")


def test_stray_files(tmp_path):
    root = _make_task(tmp_path / "T", version=2)
    (root / "imagesTr" / "notes.txt").write_text("x")
    (root / "labelsTr" / "case9.nii.gz").write_bytes((root / "labelsTr" / "case0.nii.gz").read_bytes())
    (root / "imagesTr" / ".DS_Store").write_text("hidden files are ignored")
    assert find_integrity_problems(root, num_processes=1) == [
        f"{root}/imagesTr/notes.txt: stray file: belongs to no training case of dataset.json "
        "(expected <case>_XXXX.nii.gz for 1 channel(s))",
        f"{root}/labelsTr/case9.nii.gz: stray file: belongs to no training case of dataset.json "
        "(expected <case>.nii.gz)",
    ]


def test_many_problems_reported_in_one_run_with_a_pool_and_nothing_written(tmp_path):
    root = _make_task(tmp_path / "T", n_cases=4)
    (root / "imagesTr" / "case0_0000.nii.gz").unlink()
    write_image(np.zeros((8, 16, 15), np.uint8), GEOMETRY, root / "labelsTr" / "case1.nii.gz")
    label = _label()
    label[0, 0, 0] = 5
    write_image(label, GEOMETRY, root / "labelsTr" / "case2.nii.gz")
    image = _image(3)
    image[0, 0, 0] = np.nan
    write_image(image, GEOMETRY, root / "imagesTs" / "case4_0000.nii.gz")
    (root / "imagesTr" / "extra_0000.nii.gz").write_bytes(b"")
    before = _snapshot(tmp_path)
    with pytest.raises(UnetrPPError) as err:
        verify_dataset_integrity(root, num_processes=2)
    message = str(err.value)
    assert message.splitlines()[0] == f"{root}: dataset integrity check failed: 5 problem(s) found"
    for expected in ("imagesTr/case0_0000.nii.gz: missing channel 0", "labelsTr/case1.nii.gz: label shape",
                     "labelsTr/case2.nii.gz: label values [5]", "imagesTs/case4_0000.nii.gz: image holds 1 NaN",
                     "imagesTr/extra_0000.nii.gz: stray file"):
        assert sum(expected in line for line in message.splitlines()) == 1, (expected, message)
    assert _snapshot(tmp_path) == before


def test_duplicate_training_entry(tmp_path):
    root = _make_task(tmp_path / "T")
    obj = json.loads((root / "dataset.json").read_text())
    obj["training"].append(obj["training"][0])
    (root / "dataset.json").write_text(json.dumps(obj))
    assert find_integrity_problems(root, num_processes=1) == [
        f"{root}/dataset.json: numTraining is 3 but 4 training case(s) are listed in 'training'",
        f"{root}/dataset.json: case 'case0' is listed more than once in 'training'",
    ]


def test_missing_labelstr_is_one_problem_and_images_are_still_checked(tmp_path):
    root = _make_task(tmp_path / "T", version=2)
    for path in (root / "labelsTr").iterdir():
        path.unlink()
    (root / "labelsTr").rmdir()
    image = _image(0)
    image[0, 0, 0] = np.inf
    write_image(image, GEOMETRY, root / "imagesTr" / "case1_0000.nii.gz")
    assert find_integrity_problems(root, num_processes=1) == [
        f"{root}/labelsTr: folder not found (training labels go here)",
        f"{root}/imagesTr/case1_0000.nii.gz: image holds 0 NaN and 1 inf voxels",
    ]
