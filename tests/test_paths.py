import pytest

from unetr_pp import paths
from unetr_pp.utilities.errors import UnetrPPError


def test_unset_variable_names_variable_and_example(monkeypatch):
    monkeypatch.delenv("unetr_pp_preprocessed", raising=False)
    with pytest.raises(UnetrPPError) as err:
        paths.preprocessed_folder()
    assert "unetr_pp_preprocessed" in str(err.value)
    assert "export unetr_pp_preprocessed=" in str(err.value)


def test_folders_follow_variables(env_folders):
    assert paths.raw_data_folder() == env_folders["unetr_pp_raw_data_base"] / "unetr_pp_raw_data"
    assert paths.cropped_data_folder() == env_folders["unetr_pp_raw_data_base"] / "unetr_pp_cropped_data"
    assert paths.results_folder() == env_folders["RESULTS_FOLDER"] / "unetr_pp"


def test_resolve_task_by_id_and_name(env_folders):
    raw = paths.raw_data_folder()
    (raw / "Task002_Synapse").mkdir(parents=True)
    (raw / "Dataset005_Prostate").mkdir()
    assert paths.resolve_task(2) == "Task002_Synapse"
    assert paths.resolve_task("2") == "Task002_Synapse"
    assert paths.resolve_task("Task002_Synapse") == "Task002_Synapse"
    assert paths.resolve_task("5") == "Dataset005_Prostate"
    with pytest.raises(UnetrPPError, match="no task with id 7"):
        paths.resolve_task(7)
    with pytest.raises(UnetrPPError, match="neither a task id"):
        paths.resolve_task("Synapse")


def test_resolve_task_ambiguous(tmp_path):
    (tmp_path / "Task002_A").mkdir()
    (tmp_path / "Dataset002_B").mkdir()
    with pytest.raises(UnetrPPError, match="ambiguous"):
        paths.resolve_task(2, [tmp_path])


def test_parse_task_name_accepts_seed_two_digit_names():
    assert paths.parse_task_name("Task02_Synapse") == (2, "Synapse")
    assert paths.parse_task_name("Dataset123_X_Y") == (123, "X_Y")
    assert paths.parse_task_name("imagesTr") is None
