"""hw5.settings: the one reader of the HW5_* variables, its strict switches and its folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from hw5.locations import SHIPPED_WEIGHTS, SOURCE_ROOT
from hw5.settings import Settings


def test_defaults_are_full_mode_on_the_best_device():
    s = Settings.from_env({})
    assert (s.quick, s.use_shipped, s.mode) == (False, False, "full")
    assert s.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert s.data_roots is None and s.cache_dir is None


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False),
                                       ("false", False), ("no", False), ("off", False), ("", False)])
def test_switches_take_the_usual_spellings(value, on):
    assert Settings.from_env({"HW5_QUICK": value}).quick is on


@pytest.mark.parametrize("value", ["2", "y", "quick", "full"])
def test_an_unknown_switch_value_is_an_error_not_full_mode(value):
    with pytest.raises(ValueError, match=rf"HW5_QUICK='{value}' is not a switch; set it to 1 \(on\) or 0 \(off\)"):
        Settings.from_env({"HW5_QUICK": value})


def test_bad_device_names_the_variable_and_the_fix():
    with pytest.raises(ValueError, match=r"HW5_DEVICE='gpu': .*use 'cuda'"):
        Settings.from_env({"HW5_DEVICE": "gpu"})
    assert Settings.from_env({"HW5_DEVICE": "cpu"}).device == torch.device("cpu")


def test_quick_mode_always_trains_and_folders_never_overwrite_a_full_run(tmp_path):
    full = Settings.from_env({"HW5_OUT": str(tmp_path)})
    assert full.figures_dir(2) == tmp_path / "figures" / "problem2" and full.figures_dir(2).is_dir()
    assert full.runs_dir(2) == tmp_path / "runs" / "problem2"
    quick = Settings.from_env({"HW5_OUT": str(tmp_path), "HW5_QUICK": "1", "HW5_USE_SHIPPED": "1"})
    assert not quick.use_shipped, "quick mode always trains"
    assert quick.figures_dir(2) == tmp_path / "figures" / "quick" / "problem2"
    assert quick.runs_dir(2) == tmp_path / "runs" / "quick" / "problem2"
    assert quick.weights_dir() == tmp_path / "runs" / "quick" / "weights"
    shipped = Settings.from_env({"HW5_OUT": str(tmp_path), "HW5_USE_SHIPPED": "1"})
    assert shipped.use_shipped and shipped.figures_dir(1) == tmp_path / "figures" / "shipped" / "problem1"
    assert full.weights_dir() == tmp_path / "weights", "only a full run in the source checkout ships weights"
    with pytest.raises(ValueError, match="quick mode always trains"):
        Settings(quick=True, use_shipped=True)


def test_a_training_time_is_marked_as_this_machines_unless_it_is_the_shipped_weights_record():
    assert Settings.from_env({}).training_clock == "this machine"
    assert Settings.from_env({"HW5_QUICK": "1"}).training_clock == "this machine"
    assert Settings.from_env({"HW5_USE_SHIPPED": "1"}).training_clock == "the shipped weights' training run"


@pytest.mark.skipif(SOURCE_ROOT is None, reason="needs a source checkout")
def test_a_full_run_in_the_checkout_exports_the_shipped_weights():
    assert Settings(out=SOURCE_ROOT).weights_dir() == SHIPPED_WEIGHTS


def test_data_places_come_from_the_environment(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "c").mkdir()
    s = Settings.from_env({"HW5_DATA": str(tmp_path / "d"), "HW5_CACHE": str(tmp_path / "c")})
    assert s.data_roots[0] == tmp_path / "d" and len(s.data_roots) > 1  # then hw5.data's default places
    assert s.cache_dir == tmp_path / "c"


FOLDER_VARIABLES = ("HW5_OUT", "HW5_DATA", "HW5_CACHE")


def _used(settings: Settings, name: str) -> Path | None:
    """The folder ``settings`` took from variable ``name``: HW5_DATA is searched first, the others are used as
    they are."""
    return {"HW5_OUT": settings.out, "HW5_DATA": (settings.data_roots or [None])[0],
            "HW5_CACHE": settings.cache_dir}[name]


@pytest.mark.parametrize("name", FOLDER_VARIABLES)
def test_a_folder_variable_naming_a_missing_path_is_an_error_not_a_fallback(tmp_path, name):
    missing = tmp_path / "typo" / "folder"
    with pytest.raises(FileNotFoundError) as err:
        Settings.from_env({name: str(missing)})
    msg = str(err.value)
    assert f"{name} is {str(missing)!r}" in msg and "not an existing folder" in msg
    assert "create it, fix the path, or unset " + name in msg
    assert not missing.exists() and not (tmp_path / "typo").exists(), "checking a path creates nothing"
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    with pytest.raises(FileNotFoundError, match=f"{name} is .*a_file'.*not an existing folder"):
        Settings.from_env({name: str(a_file)})


@pytest.mark.parametrize("name", FOLDER_VARIABLES)
def test_a_folder_variable_naming_an_existing_folder_is_used(tmp_path, monkeypatch, name):
    folder = tmp_path / "chosen"
    folder.mkdir()
    assert _used(Settings.from_env({name: str(folder)}), name) == folder
    assert _used(Settings.from_env({name: ""}), name) != folder  # empty counts as unset: the default
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _used(Settings.from_env({name: "~/chosen"}), name) == folder  # ~ is the user's home, as in a shell


def test_no_other_module_reads_the_environment():
    package = Path(__file__).resolve().parent.parent / "hw5"
    found = subprocess.run(["grep", "-rln", "os.environ", str(package), "--include=*.py"], capture_output=True,
                           text=True).stdout.split()
    assert [Path(p).name for p in found] == ["settings.py"]
