"""Preprocessing end to end on tiny raw tasks: arrays vs a step-by-step reference, properties, locations,
transpose + separate z, mask semantics, inference path, resumability and interruption."""
from __future__ import annotations

import numpy as np
import pytest

from unetr_pp.io import load_dataset_json, read_image
from unetr_pp.io.plans import Plans
from unetr_pp.preprocessing import load_case, preprocess_case_for_inference
from unetr_pp.preprocessing.cropping import crop_to_nonzero
from unetr_pp.preprocessing.normalization import ct_normalize
from unetr_pp.experiment.plan_and_preprocess import PlanAndPreprocessOptions, plan_and_preprocess
from unetr_pp.preprocessing.preprocessor import preprocess_configuration
from unetr_pp.preprocessing.resampling import resample_to_spacing
from unetr_pp.utilities.files import load_json

from prep_tasks import make_task

PROPERTY_KEYS = {"case_id", "geometry", "original_shape", "bbox", "shape_after_cropping", "original_spacing",
                 "transpose_forward", "spacing_after_resampling", "shape_after_resampling", "use_nonzero_mask"}


def _run(task="901", **kwargs):
    return plan_and_preprocess(PlanAndPreprocessOptions(task=task, processes_fullres=1, processes_lowres=1,
                                                        **kwargs))


@pytest.fixture
def ct_task(env_folders):
    make_task(env_folders["unetr_pp_raw_data_base"], n_cases=3)
    folder = _run()
    return env_folders, folder, load_json(folder / "unetr_pp_Plansv2.1.json")


def test_outputs_match_a_step_by_step_reference(ct_task):
    env, folder, plans = ct_task
    config = plans["configurations"]["3d_fullres"]
    assert (folder / "dataset_fingerprint.json").is_file() and (folder / "dataset.json").is_file()
    data_folder = folder / config["data_identifier"]
    raw = env["unetr_pp_raw_data_base"] / "unetr_pp_raw_data" / "Task901_Tiny"
    for i in range(3):
        case = load_case(data_folder, f"case_{i:03d}")
        image, geometry = read_image(raw / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        label, _ = read_image(raw / "labelsTr" / f"case_{i:03d}.nii.gz")
        cropped, seg, bbox = crop_to_nonzero(image[None].astype(np.float32), label[None].astype(np.int16))
        seg[seg < 0] = 0  # CT: mask not used for normalization -> no -1 in the stored seg
        normed = ct_normalize(cropped[0], plans["foreground_intensity_properties_per_channel"]["0"])[None]
        ref = resample_to_spacing(normed, geometry.spacing, config["spacing"], False, 3)
        ref_seg = resample_to_spacing(seg, geometry.spacing, config["spacing"], True, 1)
        assert case.data.dtype == np.float32 and case.seg.dtype == np.int8
        np.testing.assert_allclose(case.data, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(case.seg, ref_seg)
        props = case.properties
        assert PROPERTY_KEYS <= set(props)
        assert props["bbox"] == bbox and props["original_shape"] == list(image.shape)
        assert props["shape_after_resampling"] == list(case.data.shape[1:])
        assert props["geometry"] == geometry.to_json() and props["use_nonzero_mask"] is False
        for label_id in (1, 2):
            locations = case.class_locations[label_id]
            n = int(np.count_nonzero(case.seg == label_id))
            assert locations.shape == (min(n, 10_000), 3) and locations.dtype == np.int32
            assert np.all(case.seg[0][tuple(locations.T)] == label_id)
            assert len(np.unique(locations, axis=0)) == len(locations)


def test_inference_preprocessing_equals_training_data(ct_task):
    env, folder, plans = ct_task
    raw = env["unetr_pp_raw_data_base"] / "unetr_pp_raw_data" / "Task901_Tiny"
    data, props = preprocess_case_for_inference([raw / "imagesTr" / "case_001_0000.nii.gz"], Plans.from_json(plans),
                                                "3d_fullres")
    case = load_case(folder / plans["configurations"]["3d_fullres"]["data_identifier"], "case_001", mmap=False)
    np.testing.assert_array_equal(data, case.data)
    assert props["case_id"] == "case_001"
    assert {k: props[k] for k in PROPERTY_KEYS} == {k: case.properties[k] for k in PROPERTY_KEYS}


def test_anisotropic_last_axis_is_transposed_and_mri_keeps_minus_one(env_folders):
    shapes = [(26, 24, 6), (24, 26, 7), (25, 25, 6)]
    spacings = [(1.0, 1.0, 4.0), (1.0, 1.0, 4.5), (1.0, 1.0, 5.0)]
    make_task(env_folders["unetr_pp_raw_data_base"], "Task902_Aniso", 3, "MRI", shapes, spacings)
    folder = _run("902")
    plans = load_json(folder / "unetr_pp_Plansv2.1.json")
    config = plans["configurations"]["3d_fullres"]
    # few slices on the coarse axis: its target is the 10th percentile of [4, 4.5, 5], not the median
    assert plans["transpose_forward"] == [2, 0, 1] and config["spacing"] == pytest.approx([4.1, 1.0, 1.0])
    assert config["normalization_schemes"] == ["ZScoreNormalization"] and config["use_mask_for_norm"] == [True]
    case = load_case(folder / config["data_identifier"], "case_000")
    fp = load_json(folder / "dataset_fingerprint.json")
    crop = fp["shapes_after_crop"][0]
    assert case.data.shape[1:] == (round(crop[2] * 4.0 / 4.1), crop[0], crop[1])
    assert case.properties["use_nonzero_mask"] is True and case.seg.min() == -1
    inside = case.data[0][case.seg[0] >= 0]
    assert abs(inside.mean()) < 0.2 and np.all(case.data[0][case.seg[0] < 0] == 0)


def test_rerun_skips_finished_cases_and_cleans_temp_files(ct_task):
    env, folder, plans = ct_task
    data_folder = folder / plans["configurations"]["3d_fullres"]["data_identifier"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in data_folder.iterdir()}
    (data_folder / ".case_000.npy.abc123.npy").write_bytes(b"half written")  # left by a killed run
    (data_folder / "case_002_fg.npz").unlink()  # case 2 was interrupted before finishing
    info = load_dataset_json(env["unetr_pp_raw_data_base"] / "unetr_pp_raw_data" / "Task901_Tiny")
    cropped = env["unetr_pp_raw_data_base"] / "unetr_pp_cropped_data" / "Task901_Tiny"
    computed = preprocess_configuration(info.training_cases, cropped, folder, Plans.from_json(plans), "3d_fullres", 1)
    assert computed == 1
    after = {p.name: p.stat().st_mtime_ns for p in data_folder.iterdir()}
    assert not any(name.startswith(".") for name in after)
    assert all(after[n] == mtimes[n] for n in mtimes if n.startswith(("case_000", "case_001")))
    assert after["case_002.json"] != mtimes["case_002.json"]
    assert preprocess_configuration(info.training_cases, cropped, folder, Plans.from_json(plans), "3d_fullres", 1) == 0


def test_changed_plans_redo_the_cases(ct_task):
    env, folder, plans = ct_task
    config = plans["configurations"]["3d_fullres"]
    before = (folder / config["data_identifier"] / "case_000.npy").stat().st_mtime_ns
    _run(overrides=["batch_size=3"])  # does not change preprocessed data: kept
    assert (folder / config["data_identifier"] / "case_000.npy").stat().st_mtime_ns == before
    _run(overrides=["spacing=[3.0,1.5,1.5]"])
    case = load_case(folder / config["data_identifier"], "case_000")
    assert case.properties["spacing_after_resampling"] == [3.0, 1.5, 1.5]


def test_interrupted_first_run_resumes_in_the_partial_folder(env_folders):
    make_task(env_folders["unetr_pp_raw_data_base"], n_cases=2)
    pre = env_folders["unetr_pp_preprocessed"]
    folder = _run()
    data_folder = next(p for p in folder.iterdir() if p.is_dir())
    (data_folder / "case_001.json").unlink()
    mtime = (data_folder / "case_000.npy").stat().st_mtime_ns
    folder.rename(pre / ".Task901_Tiny.partial")  # as if the first run had been killed before the rename
    assert _run() == folder
    assert not (pre / ".Task901_Tiny.partial").exists()
    assert (data_folder / "case_000.npy").stat().st_mtime_ns == mtime and (data_folder / "case_001.json").is_file()


def test_two_processes_give_the_same_result(env_folders):
    make_task(env_folders["unetr_pp_raw_data_base"], n_cases=2)
    folder = plan_and_preprocess(PlanAndPreprocessOptions(task="901", processes_fullres=2))
    data_folder = next(p for p in folder.iterdir() if p.is_dir())
    serial = load_case(data_folder, "case_001", mmap=False)
    for p in data_folder.iterdir():
        p.unlink()
    _run()
    np.testing.assert_array_equal(load_case(data_folder, "case_001").data, serial.data)


def test_lowres_configuration_uses_its_own_spacing_and_folder(ct_task):
    env, folder, plans = ct_task
    lowres = dict(plans["configurations"]["3d_fullres"], data_identifier="p_3d_lowres", spacing=[5.0, 2.0, 2.0],
                  next_stage="3d_fullres")
    plans["configurations"]["3d_lowres"] = lowres
    info = load_dataset_json(env["unetr_pp_raw_data_base"] / "unetr_pp_raw_data" / "Task901_Tiny")
    cropped = env["unetr_pp_raw_data_base"] / "unetr_pp_cropped_data" / "Task901_Tiny"
    assert preprocess_configuration(info.training_cases, cropped, folder, Plans.from_json(plans), "3d_lowres", 1) == 3
    case = load_case(folder / "p_3d_lowres", "case_002")
    crop = case.properties["shape_after_cropping"]
    spacing = case.properties["original_spacing"]
    assert case.data.shape[1:] == tuple(round(c * s / t) for c, s, t in zip(crop, spacing, [5.0, 2.0, 2.0]))
    assert case.properties["spacing_after_resampling"] == [5.0, 2.0, 2.0]
