import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, binary_fill_holes

import unetr_pp.dataset.synthetic as synthetic
from unetr_pp.cli.make_demo_task import main
from unetr_pp.dataset.integrity import verify_dataset_integrity
from unetr_pp.dataset.synthetic import AIR_HU, ORGANS, case_grid, generate_case, make_demo_task
from unetr_pp.io import read_image

SYNAPSE_NAMES = ["spleen", "right kidney", "left kidney", "gallbladder", "liver", "stomach", "aorta", "pancreas"]


@pytest.fixture(scope="module")
def demo_task(tmp_path_factory):
    """Two training cases and one test case (indices 0, 1, 2; case 1 has a flipped direction)."""
    return make_demo_task(tmp_path_factory.mktemp("raw"), task_id=7, num_cases=2, num_test_cases=1, seed=11)


def _cases(task):
    for folder, labels in (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs")):
        for path in sorted((task / folder).iterdir()):
            case_id = path.name[: -len("_0000.nii.gz")]
            yield case_id, path, task / labels / f"{case_id}.nii.gz"


def _snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_generation_is_deterministic_by_seed(demo_task):
    a, b = generate_case(11, 1), generate_case(11, 1)
    assert a.image.tobytes() == b.image.tobytes() and a.label.tobytes() == b.label.tobytes()
    assert a.geometry == b.geometry
    image, _ = read_image(demo_task / "imagesTr" / "demo_001_0000.nii.gz")
    label, _ = read_image(demo_task / "labelsTr" / "demo_001.nii.gz")
    assert image.tobytes() == a.image.tobytes() and label.tobytes() == a.label.tobytes()
    assert case_grid(12, 1) != case_grid(11, 1)


def test_task_layout_and_dataset_json(demo_task):
    assert demo_task.name == "Task007_Demo"
    assert sorted(p.name for p in demo_task.iterdir()) == ["dataset.json", "imagesTr", "imagesTs", "labelsTr",
                                                           "labelsTs"]
    obj = json.loads((demo_task / "dataset.json").read_text())
    assert obj["modality"] == {"0": "CT"}
    assert obj["labels"] == {"0": "background", **{str(i + 1): n for i, n in enumerate(SYNAPSE_NAMES)}}
    assert obj["numTraining"] == 2 and obj["numTest"] == 1
    assert obj["training"] == [{"image": f"./imagesTr/demo_00{i}.nii.gz", "label": f"./labelsTr/demo_00{i}.nii.gz"}
                               for i in range(2)]
    assert obj["test"] == ["./imagesTs/demo_002.nii.gz"]
    assert not [p for p in demo_task.parent.iterdir() if p.name.startswith(".")], "temp folder left behind"


def test_task_passes_integrity_verification(demo_task):
    info = verify_dataset_integrity(demo_task, num_processes=1)
    assert [c.case_id for c in info.training_cases] == ["demo_000", "demo_001"]
    assert [c.case_id for c in info.test_cases] == ["demo_002"]


def test_spacing_size_and_geometry_headers(demo_task):
    directions = []
    for index, (case_id, image_path, label_path) in enumerate(_cases(demo_task)):
        image, geometry = read_image(image_path)
        label, label_geometry = read_image(label_path)
        assert image.dtype == np.int16 and label.dtype == np.uint8
        assert label.shape == image.shape and label_geometry.mismatch(geometry) == []
        assert 20 <= image.shape[0] <= 60 and all(96 <= n <= 160 for n in image.shape[1:])
        assert 1.5 <= geometry.spacing[0] <= 5.0
        assert all(0.6 <= s <= 1.0 for s in geometry.spacing[1:])
        assert any(abs(v) > 1.0 for v in geometry.itk_origin)
        expected_shape, expected_geometry = case_grid(11, index)
        assert image.shape == expected_shape
        assert geometry.mismatch(expected_geometry) == []  # the header survives the NIfTI round trip
        directions.append(geometry.itk_direction)
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert directions[0] == identity and directions[1] != identity


def test_spacings_and_sizes_are_heterogeneous():
    grids = [case_grid(seed, i) for seed in range(5) for i in range(10)]
    shapes = np.array([shape for shape, _ in grids])
    spacings = np.array([geometry.spacing for _, geometry in grids])
    assert shapes[:, 0].min() >= 20 and shapes[:, 0].max() <= 60 and np.ptp(shapes[:, 0]) > 15
    assert shapes[:, 1:].min() >= 96 and shapes[:, 1:].max() <= 160 and np.ptp(shapes[:, 2]) > 30
    assert spacings[:, 0].min() >= 1.5 and spacings[:, 0].max() <= 5.0 and np.ptp(spacings[:, 0]) > 2.0
    assert spacings[:, 1:].min() >= 0.6 and spacings[:, 1:].max() <= 1.0 and np.ptp(spacings[:, 1]) > 0.2
    flipped = [g.itk_direction for _, g in grids if g.itk_direction != (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)]
    assert 0.15 < len(flipped) / len(grids) < 0.35 and len(set(flipped)) == 2


def test_labels_intensities_and_anatomy(demo_task):
    for case_id, image_path, label_path in _cases(demo_task):
        image, geometry = read_image(image_path)
        label, _ = read_image(label_path)
        assert sorted(np.unique(label).tolist()) == list(range(9)), case_id
        # air outside the body: -1000 HU with noise, so a crop to nonzero keeps the whole volume
        body = np.stack([binary_fill_holes(s) for s in image > -500])
        air = image[~body]
        assert air.size > 0.05 * image.size and abs(float(np.median(air)) - AIR_HU) < 5
        assert not (body[:, [0, -1], :].any() or body[:, :, [0, -1]].any()), f"{case_id}: body cut by the FOV"
        assert np.count_nonzero(image) > 0.999 * image.size
        assert image.min() >= -1024
        assert not np.any(label[~body]), f"{case_id}: organ voxels outside the body"
        # organ interiors hold the organ's HU (noise, blur and per-case shifts stay within 25 HU)
        for organ in ORGANS:
            interior = binary_erosion(label == organ.label)
            assert abs(float(np.median(image[interior])) - organ.hu) < 25, (case_id, organ.name)
        # anatomy is consistent in physical (LPS) space whatever the direction: liver on the patient's
        # right (-x) of the spleen, right kidney right of the left one, liver above the kidneys
        direction = np.asarray(geometry.itk_direction).reshape(3, 3)

        def centroid(label_id):
            zyx = np.argwhere(label == label_id).mean(axis=0)
            return np.asarray(geometry.itk_origin) + direction @ (zyx[::-1] * geometry.itk_spacing)

        names = {organ.name: organ.label for organ in ORGANS}
        liver, spleen = centroid(names["liver"]), centroid(names["spleen"])
        right_kidney, left_kidney = centroid(names["right kidney"]), centroid(names["left kidney"])
        assert liver[0] < spleen[0] and right_kidney[0] < left_kidney[0], case_id
        assert liver[2] > right_kidney[2], case_id
        assert centroid(names["aorta"])[1] > centroid(names["pancreas"])[1], case_id  # aorta posterior


def test_cli_writes_task_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "raw"
    args = ["-o", str(out), "--cases", "1", "--test_cases", "0", "--seed", "5", "-t", "991"]
    assert main(args) == 0
    task = out / "Task991_Demo"
    assert capsys.readouterr().out.strip() == str(task)
    assert sorted(p.name for p in (task / "imagesTr").iterdir()) == ["demo_000_0000.nii.gz"]
    assert list((task / "imagesTs").iterdir()) == []
    mode = (task / "imagesTr" / "demo_000_0000.nii.gz").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask and (task.stat().st_mode & 0o777) == 0o777 & ~umask
    before = _snapshot(out)
    assert main(args) == 2
    assert f"{task}: task folder already exists; pass --overwrite" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert main(args[:-4] + ["--seed", "6", "-t", "991", "--overwrite"]) == 0
    assert json.loads((task / "dataset.json").read_text())["description"].endswith("seed 6)")
    assert sorted(p.name for p in out.iterdir()) == ["Task991_Demo"]


def test_cli_output_errors(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["-o", str(blocker / "sub"), "--cases", "1"]) == 2
    assert f"{blocker / 'sub'}: output folder cannot be written" in capsys.readouterr().err
    monkeypatch.delenv("unetr_pp_raw_data_base", raising=False)
    assert main(["--cases", "1"]) == 2
    assert "no output folder: give -o DIR, or environment variable unetr_pp_raw_data_base is not set" in \
        capsys.readouterr().err
    assert main(["-o", str(tmp_path), "--cases", "0"]) == 2
    assert "need at least 1 training case" in capsys.readouterr().err


def test_cli_default_folder_and_module_entry(env_folders):
    result = subprocess.run([sys.executable, "-m", "unetr_pp.cli.make_demo_task", "--cases", "1",
                             "--test_cases", "0"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    task = env_folders["unetr_pp_raw_data_base"] / "unetr_pp_raw_data" / "Task990_Demo"
    assert result.stdout.strip() == str(task) and (task / "dataset.json").is_file()


def test_failure_leaves_no_partial_folder(tmp_path, monkeypatch):
    real = synthetic.generate_case

    def failing(seed, index):
        if index == 1:
            raise RuntimeError("disk full")
        return real(seed, index)

    monkeypatch.setattr(synthetic, "generate_case", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        make_demo_task(tmp_path, num_cases=2, num_test_cases=0)
    assert list(tmp_path.iterdir()) == []
