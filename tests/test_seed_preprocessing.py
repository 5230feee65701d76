"""The seeds' preprocessing as plans presets: FixedWindowNormalization (validated in the plans) equals MONAI's
ScaleIntensityRanged on a volume already at the preset's spacing; --recipe seed on other plans warns once."""
from __future__ import annotations

import numpy as np
import pytest
from monai.transforms import ScaleIntensityRanged

from unetr_pp.cli.plan_and_preprocess import main as plan_and_preprocess
from unetr_pp.io import read_image, write_image
from unetr_pp.io.plans import Configuration, Plans
from unetr_pp.planning.presets import load_preset
from unetr_pp.preprocessing.preprocessed_data import load_case
from unetr_pp.training.recipe_hooks import seed_preprocessing_warning
from unetr_pp.training.recipes import RECIPES
from unetr_pp.utilities.errors import UnetrPPError

from plans_factory import config_json
from prep_tasks import make_task

TASK = "Task905_SeedWindow"
WINDOW = {"a_min": -175.0, "a_max": 250.0, "b_min": 0.0, "b_max": 1.0}


def test_plans_validate_the_window_scheme():
    good = config_json(normalization_schemes=["FixedWindowNormalization"], intensity_windows={"0": WINDOW})
    config = Configuration.from_json("3d_fullres", good)
    assert config.intensity_windows == {"0": WINDOW} and config.to_json()["intensity_windows"] == {"0": WINDOW}
    defaults = Configuration.from_json("3d_fullres", {**good, "intensity_windows": {"0": {"a_min": 0, "a_max": 1000}}})
    assert defaults.intensity_windows["0"] == {"a_min": 0.0, "a_max": 1000.0, "b_min": 0.0, "b_max": 1.0}
    assert "intensity_windows" not in Configuration.from_json("3d_fullres", config_json()).to_json()
    for changes, message in (
            ({"intensity_windows": {}}, 'channel 0 uses FixedWindowNormalization but intensity_windows has no entry "0"'),
            ({"intensity_windows": {"0": {"a_min": 250, "a_max": -175}}}, "must be numbers a_min < a_max"),
            ({"intensity_windows": {"0": {"a_min": 0}}}, "must be numbers a_min < a_max"),
            ({"intensity_windows": {"0": WINDOW, "1": WINDOW}}, "key '1', which is not an input channel index"),
            ({"normalization_schemes": ["CTNormalization"]}, 'intensity_windows["0"] is given but channel 0 uses '
                                                              "CTNormalization")):
        with pytest.raises(UnetrPPError) as err:
            Configuration.from_json("3d_fullres", {**good, **changes})
        assert message in str(err.value)


def test_btcv_preset_preprocessing_equals_monai_scale_intensity_ranged(env_folders):
    """Raw CT at 2.0 x 1.5 x 1.5 mm (z, y, x) = the preset's spacing, so only the intensities change."""
    task = make_task(env_folders["unetr_pp_raw_data_base"], name=TASK, n_cases=2, shapes=[(12, 20, 18), (13, 19, 20)],
                     spacings=[(2.0, 1.5, 1.5)] * 2)
    for case in ("case_000", "case_001"):
        path = task / "imagesTr" / f"{case}_0000.nii.gz"
        image, geometry = read_image(path)
        body = image != 0
        image[body] = image[body] * 12 - 300  # spans below -175 and above 250: both clip ends are exercised
        write_image(image, geometry, path)
    assert plan_and_preprocess(["-t", TASK, "--preset", "btcv", "-c", "3d_fullres", "-tf", "1"]) == 0
    folder = env_folders["unetr_pp_preprocessed"] / TASK
    plans = Plans.load(folder / "unetr_pp_Plansv2.1.json")
    config = plans.configuration("3d_fullres")
    assert config.spacing == (2.0, 1.5, 1.5) and config.normalization_schemes == ("FixedWindowNormalization",)
    assert config.intensity_windows == {"0": WINDOW} and list(plans.transpose_forward) == [0, 1, 2]
    scale = ScaleIntensityRanged(keys=["image"], clip=True, **WINDOW)
    for case in ("case_000", "case_001"):
        ours = load_case(folder / config.data_identifier, case)
        raw, _ = read_image(task / "imagesTr" / f"{case}_0000.nii.gz")
        (z0, z1), (y0, y1), (x0, x1) = ours.properties["bbox"]
        cropped = raw[None, z0:z1, y0:y1, x0:x1].astype(np.float32)
        assert cropped.min() < -175 and cropped.max() > 250
        expected = np.asarray(scale({"image": cropped})["image"])
        assert ours.data.shape == expected.shape
        np.testing.assert_allclose(np.asarray(ours.data), expected, rtol=0, atol=1e-6)
        assert float(ours.data.min()) == 0.0 and float(ours.data.max()) == 1.0


def test_seed_recipe_warns_on_plans_without_its_window():
    plain = Configuration.from_json("3d_fullres", config_json(normalization_schemes=["CTNormalization"]))
    warning = seed_preprocessing_warning(RECIPES["unetr_btcv"], plain)
    assert warning == ("WARNING: --recipe seed: the plans normalize with CTNormalization, not the unetr_btcv recipe's "
                       "fixed intensity window; unetr_pp_plan_and_preprocess -t TASK --preset btcv gives the seed's "
                       "preprocessing (window and spacing)")
    assert "--preset flare / --preset amos / --preset feta" in seed_preprocessing_warning(RECIPES["uxnet"], plain)
    btcv = load_preset("btcv")["3d_fullres"]
    seeded = Configuration.from_json("3d_fullres", config_json(
        normalization_schemes=btcv["normalization_schemes"], intensity_windows=btcv["intensity_windows"]))
    assert seed_preprocessing_warning(RECIPES["unetr_btcv"], seeded) is None
    assert seed_preprocessing_warning(RECIPES["swin_unetr_btcv"], seeded) is None
    assert seed_preprocessing_warning(RECIPES["uxnet"], seeded) is not None  # -125..275, not BTCV's window
    amos = load_preset("amos")["3d_fullres"]
    assert seed_preprocessing_warning(RECIPES["uxnet"], Configuration.from_json("3d_fullres", config_json(
        normalization_schemes=amos["normalization_schemes"], intensity_windows=amos["intensity_windows"]))) is None
    assert seed_preprocessing_warning(RECIPES["unetr_pp"], plain) is None


def test_seed_presets_hold_the_recipes_windows_and_spacings():
    for recipe in ("unetr_btcv", "uxnet"):
        for name, window in RECIPES[recipe].windows.items():
            preset = load_preset(name)["3d_fullres"]
            assert preset["intensity_windows"]["0"] == {"a_min": window.a_min, "a_max": window.a_max,
                                                        "b_min": window.b_min, "b_max": window.b_max}
            spacing = None if window.pixdim_xyz is None else list(window.pixdim_xyz[::-1])
            assert preset.get("spacing") == spacing and preset["patch_size"] == list(RECIPES[recipe].roi_size)
