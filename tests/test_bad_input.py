"""Bad input never trains silently: each case feeds one bad input and checks the error names the problem
and the fix. Also: where an installed hw5 (as opposed to a source checkout) reads and writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hw5
from hw5 import checkpoint as ckpt
from hw5 import data, files, locations
from hw5.data import datasets

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def _tiny_checkpoint(directory: Path, epoch: int = 1) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt.save_checkpoint(directory, {"net": model}, {"width": 2}, {"epoch": epoch, "history": {}}, {"adam": opt})
    return model, opt


def _fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Linear(3, 2)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


# ---------------------------------------------------------------- damaged checkpoint.json

def _cut_short(sidecar: dict) -> str:
    return json.dumps(sidecar)[:40]  # a write cut short by a full disk: not JSON


def _without_files(sidecar: dict) -> str:
    return json.dumps({k: v for k, v in sidecar.items() if k != "files"})


def _without_trainer_digest(sidecar: dict) -> str:
    return json.dumps({**sidecar, "sha256": {"weights": sidecar["sha256"]["weights"]}})


def _a_list(sidecar: dict) -> str:
    return json.dumps([sidecar])


def _epoch_as_text(sidecar: dict) -> str:
    return json.dumps({**sidecar, "epoch": "3"})


def _not_utf8(sidecar: dict) -> bytes:
    return b"\xff\xfe" + json.dumps(sidecar).encode()


@pytest.mark.parametrize("damage, problem", [
    (_cut_short, "is not valid JSON"),
    (_not_utf8, "is not valid JSON"),
    (_without_files, "the required key(s) ['files'] are missing"),
    (_without_trainer_digest, "'sha256' holds no digest for files['trainer']"),
    (_a_list, "holds a JSON list, not an object"),
    (_epoch_as_text, "'epoch' is a str, not a int"),
])
def test_damaged_sidecar_raises_checkpoint_error_naming_file_and_fix(tmp_path, damage, problem):
    _tiny_checkpoint(tmp_path)
    path = tmp_path / "checkpoint.json"
    damaged = damage(json.loads(path.read_text()))
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    model, opt = _fresh()
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path, {"net": model}, {"width": 2}, {"adam": opt})
    msg = str(err.value)
    assert f"{path} is damaged" in msg and problem in msg
    assert f"Delete the folder {tmp_path} to start the run afresh" in msg
    assert not isinstance(err.value.__cause__, KeyError)


def test_sidecar_of_a_newer_format_says_which_hw5_reads_it(tmp_path):
    _tiny_checkpoint(tmp_path)
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": ckpt.FORMAT_VERSION + 1}))
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint format 2, but this hw5 reads format 1\. Load it "
                                                   r"with the hw5 version that wrote it, or update hw5"):
        ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})


def test_saving_over_a_damaged_sidecar_replaces_it(tmp_path):
    _tiny_checkpoint(tmp_path, epoch=1)
    (tmp_path / "checkpoint.json").write_text("{")
    _tiny_checkpoint(tmp_path, epoch=2)
    assert ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})["epoch"] == 2


# ---------------------------------------------------------------- corrupt shipped weights

@pytest.fixture()
def shipped_copy(tmp_path) -> Path:
    """A private copy of the shipped ``rbm_M16``: ``<tmp>/weights/rbm_M16`` (the real one is never touched)."""
    root = tmp_path / "weights"
    shutil.copytree(locations.SHIPPED_WEIGHTS / "rbm_M16", root / "rbm_M16")
    return root


def _flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))


def test_the_package_weights_count_as_shipped_and_a_copy_does_not(shipped_copy):
    assert ckpt.is_shipped(locations.SHIPPED_WEIGHTS / "rbm_M16")
    assert not ckpt.is_shipped(shipped_copy / "rbm_M16")


def test_corrupt_weights_in_a_folder_passed_to_pretrained_say_delete_the_folder(shipped_copy):
    folder = shipped_copy / "rbm_M16"
    assert isinstance(hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy), nn.Module)  # the copy loads
    _flip_last_byte(folder / "weights-final.safetensors")
    with pytest.raises(ckpt.CheckpointError) as err:
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    msg = str(err.value)
    assert "does not match the SHA-256" in msg and str(folder / "weights-final.safetensors") in msg
    assert f"Delete the folder {folder}" in msg and "shipped" not in msg


def test_corrupt_shipped_weights_say_restore_never_delete(shipped_copy, monkeypatch):
    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", shipped_copy)  # the copy stands in for hw5/weights
    folder = shipped_copy / "rbm_M16"
    _flip_last_byte(folder / "weights-final.safetensors")
    with pytest.raises(ckpt.CheckpointError) as err:
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    msg = str(err.value)
    assert "does not match the SHA-256" in msg and str(folder / "weights-final.safetensors") in msg
    assert "Delete" not in msg and "do not delete them" in msg
    assert "git checkout -- hw5/weights/rbm_M16" in msg and "reinstall hw5" in msg

    (folder / "weights-final.safetensors").unlink()
    with pytest.raises(ckpt.CheckpointError, match=r"is missing.*git checkout -- hw5/weights/rbm_M16") as err:
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    assert "Delete" not in str(err.value)

    (folder / "checkpoint.json").write_text("{")
    with pytest.raises(ValueError) as err:  # pretrained_info reads the sidecar first
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    assert str(folder / "checkpoint.json") in str(err.value) and "not valid JSON" in str(err.value)
    assert "Delete" not in str(err.value)
    with pytest.raises(ckpt.CheckpointError, match=r"is damaged: it is not valid JSON.*git checkout --"):
        ckpt.load_checkpoint(folder, {"model": nn.Linear(1, 1)})


# ---------------------------------------------------------------- temporaries left by a kill

def _killed_mid_write(target: Path) -> Path:
    """Run files.atomic_write in a child that SIGKILLs itself half-way; return the temporary it left."""
    code = textwrap.dedent(f"""
        import os, signal
        from hw5 import files
        def write(fh):
            fh.write(b'{{"epoch": 2, "hist')
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        files.atomic_write({str(target)!r}, write)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert len(left) == 1 and files.is_atomic_temporary(left[0]), left
    return left[0]


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_killed_write_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    _tiny_checkpoint(tmp_path, epoch=1)
    leftover = _killed_mid_write(tmp_path / "checkpoint.json")
    empty = tmp_path / ".weights-epoch0002.safetensors.ab_cd123.tmp"  # killed before its first byte
    empty.write_bytes(b"")
    not_ours = [tmp_path / "notes.tmp", tmp_path / ".notes.tmp", tmp_path / "keep.abcd1234.tmp",
                tmp_path / ".x.ABCD1234.tmp"]
    for p in not_ours:
        p.write_text("user file")
    assert ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})["epoch"] == 1  # the old checkpoint is intact
    assert leftover.exists() and empty.exists(), "a young temporary may be a save in progress: left alone"

    _tiny_checkpoint(tmp_path, epoch=2)
    assert not leftover.exists() and not empty.exists()
    assert all(p.exists() for p in not_ours), "only atomic_write's own temporaries are removed"
    assert ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})["epoch"] == 2


def test_resume_removes_stale_temporaries_but_never_in_the_shipped_weights(tmp_path, shipped_copy, monkeypatch):
    run = tmp_path / "run"
    _tiny_checkpoint(run)
    stale = run / ".trainer-epoch0002.pt.k2j4_9zq.tmp"
    stale.write_bytes(b"half")
    _age(stale, 2 * ckpt.STALE_AFTER_S)
    model, opt = _fresh()
    ckpt.load_checkpoint(run, {"net": model}, {"width": 2}, {"adam": opt})
    assert not stale.exists()

    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", shipped_copy)
    in_shipped = shipped_copy / "rbm_M16" / ".checkpoint.json.k2j4_9zq.tmp"
    in_shipped.write_bytes(b"")
    _age(in_shipped, 2 * ckpt.STALE_AFTER_S)
    hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    assert in_shipped.exists(), "loading shipped weights writes nothing into the package folder"


# ---------------------------------------------------------------- the dataset cache is bound to its source

@pytest.fixture()
def real_roots() -> list[Path]:
    try:
        return [data.locate("MNIST", allow_download=False), data.locate("KMNIST", allow_download=False)]
    except data.DataError:
        pytest.skip("the raw MNIST/KMNIST files are not available offline")


def test_a_kmnist_cache_copied_under_the_mnist_name_is_not_served(real_roots, tmp_path):
    cache = tmp_path / "cache"
    kx, ky = data.load("KMNIST", "test", roots=real_roots, cache_dir=cache, allow_download=False)
    kdir, mdir = cache / "cache" / "KMNIST", cache / "cache" / "MNIST"
    shutil.copytree(kdir, mdir)  # the whole folder, as a careless copy would
    for kind in ("images", "labels"):  # and under the MD5-less names older hw5 versions used
        np.save(mdir / f"test-{kind}.npy", np.load(next(kdir.glob(f"test-{kind}.*.npy"))))

    x, y = data.load("MNIST", "test", roots=real_roots, cache_dir=cache, allow_download=False)
    raw = real_roots[0] / "MNIST" / "raw"
    assert torch.equal(x, torch.from_numpy(data.read_idx(raw / "t10k-images-idx3-ubyte.gz", "images", 10_000)))
    assert torch.equal(y, torch.from_numpy(data.read_idx(raw / "t10k-labels-idx1-ubyte.gz", "labels", 10_000)).long())
    assert not torch.equal(x, kx)
    md5 = data.DATASETS["MNIST"].md5
    assert sorted(p.name for p in mdir.iterdir()) == sorted([
        f"test-images.{md5['t10k-images-idx3-ubyte.gz']}.npy", f"test-labels.{md5['t10k-labels-idx1-ubyte.gz']}.npy"])


def test_a_cache_hit_does_not_rehash_the_raw_files(real_roots, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    x, y = data.load("MNIST", "test", roots=real_roots, cache_dir=cache, allow_download=False)

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed on a cache hit")

    monkeypatch.setattr(datasets, "md5sum", no_hashing)  # where verify_md5 looks it up
    x2, y2 = data.load("MNIST", "test", roots=[tmp_path / "no-raw-files"], cache_dir=cache, allow_download=False)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_md5_error_names_the_cache_dir_a_fresh_copy_goes_to(real_roots, tmp_path):
    copy = tmp_path / "root" / "MNIST" / "raw"
    shutil.copytree(real_roots[0] / "MNIST" / "raw", copy)
    bad = copy / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated
    cache = tmp_path / "my-cache"
    with pytest.raises(data.DataError) as err:
        data.load("MNIST", "test", roots=[tmp_path / "root"], cache_dir=cache, allow_download=False)
    msg = str(err.value)
    assert str(bad) in msg and "does not match the published" in msg
    assert f"Delete it (the next load then downloads a fresh copy into {cache / 'MNIST' / 'raw'}" in msg
    assert "into data/" not in msg


# ---------------------------------------------------------------- locations

def test_locations_of_a_source_checkout():
    assert locations.SOURCE_ROOT == REPO == locations.PACKAGE_DIR.parent
    assert locations.SHIPPED_WEIGHTS == REPO / "hw5" / "weights"
    assert locations.default_data_roots() == [REPO / "data", REPO.parent / "shared" / "data"]
    assert locations.default_cache_dir() == REPO / "data"
    assert locations.default_output_root() == REPO


def test_locations_of_an_installed_package_never_point_into_it(tmp_path, monkeypatch):
    monkeypatch.setattr(locations, "SOURCE_ROOT", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    user_cache = locations.user_cache_dir()
    if sys.platform.startswith("linux"):
        assert user_cache == tmp_path / "xdg" / "hw5"
    assert locations.default_data_roots() == data.default_roots() == [user_cache / "data"]
    assert locations.default_cache_dir() == data.default_cache_dir() == user_cache / "data"
    assert locations.default_output_root() == tmp_path
    for path in [*locations.default_data_roots(), locations.default_cache_dir(), locations.default_output_root()]:
        assert not path.is_relative_to(locations.PACKAGE_DIR) and not path.is_relative_to(REPO)
    assert not (tmp_path / "xdg").exists(), "computing a location creates nothing"


@pytest.mark.parametrize("text, expected", [
    ('[project]\nname = "hw5"\nversion = "0.1.0"\n', True),
    ("[build-system]\nrequires = []\n\n[project]  # ours\nname='hw5'  # the package\n", True),
    ('[project]\nname = "hw5-extras"\n', False),
    ('[tool.other]\nname = "hw5"\n[project]\nname = "site"\n', False),
    ("not toml at all", False),
])
def test_a_source_checkout_is_a_pyproject_declaring_hw5(tmp_path, text, expected):
    (tmp_path / "hw5").mkdir()
    (tmp_path / "pyproject.toml").write_text(text)
    assert locations._find_source_root(tmp_path / "hw5") == (tmp_path if expected else None)
    assert locations._find_source_root(tmp_path / "elsewhere" / "hw5") is None


def test_an_installed_hw5_used_from_another_folder_writes_nothing_into_site_packages(tmp_path):
    """pip install --target (a non-editable install) of this checkout; import it with PYTHONPATH from an
    unrelated folder, load a dataset and shipped weights, train one epoch of each family into a folder of the
    user's choosing: caches go to the user cache, runs where asked, default outputs to the working folder, and
    not one file under the install target changes."""
    if not SHARED.is_dir():
        pytest.skip("no ../shared/data beside the repository")
    src, target = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    # Build from a copy, so pip's in-tree build/ and *.egg-info never land in the checkout.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "hw5", src / "hw5", ignore=shutil.ignore_patterns("__pycache__"))
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (target / "hw5" / "weights" / "rbm_M16" / "weights-final.safetensors").is_file()

    home, cwd, xdg = tmp_path / "home", tmp_path / "cwd", tmp_path / "xdg"
    home.mkdir()
    cwd.mkdir()
    code = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        import hw5
        from hw5 import data, locations
        from hw5.models.rbm import RBMConfig
        from hw5.training.classifier import ClassifierTraining, train_classifier
        from hw5.training.gan import GANTraining, train_gan
        from hw5.training.rbm import RBMTraining, train_rbm
        from hw5.training.vae import VAETraining, train_vae
        x, y = data.load("MNIST", "test", roots=[Path(sys.argv[1])], allow_download=False)
        model = hw5.pretrained("rbm_M16", "cpu")
        runs, xs, ys = Path("my_runs"), x[:64], y[:64]  # one epoch of each family, into a folder the user chose
        train_gan(xs, GANTraining(batch_size=32), 1, runs / "gan", "cpu", show_progress=False)
        train_rbm(xs, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, runs / "rbm", "cpu", show_progress=False)
        train_vae(xs, ys, xs, ys, VAETraining(batch_size=32), 1, run_dir=runs / "vae", device="cpu", show_progress=False)
        train_classifier(xs, ys, ClassifierTraining(batch_size=32), 1, runs / "clf", "cpu", show_progress=False)
        settings = hw5.Settings.from_env({})
        print(json.dumps({"file": hw5.__file__, "source_root": locations.SOURCE_ROOT and str(locations.SOURCE_ROOT),
                          "output": str(locations.default_output_root()), "cache": str(locations.default_cache_dir()),
                          "roots": [str(r) for r in locations.default_data_roots()], "n": int(y.numel()),
                          "settings_out": str(settings.out), "weights": str(settings.weights_dir())}))
    """)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_CACHE_HOME": str(xdg),
           "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}  # .pyc files are Python's, not hw5's

    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(target)): (p.stat().st_size, p.stat().st_mtime_ns) for p in target.rglob("*")}

    before = snapshot()
    proc = subprocess.run([sys.executable, "-c", code, str(SHARED)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["file"]) == target / "hw5" / "__init__.py"
    assert report["source_root"] is None
    assert Path(report["output"]) == cwd
    assert Path(report["cache"]) == xdg / "hw5" / "data" and report["roots"] == [str(xdg / "hw5" / "data")]
    assert report["n"] == 10_000
    assert snapshot() == before, "the installed package folder changed"
    assert len(list((xdg / "hw5" / "data" / "cache" / "MNIST").glob("test-*.npy"))) == 2
    assert [p.name for p in cwd.iterdir()] == ["my_runs"], "only the run folder the user chose was written"
    assert sorted(p.name for p in (cwd / "my_runs").iterdir()) == ["clf", "gan", "rbm", "vae"]
    assert all((cwd / "my_runs" / name / "checkpoint.json").is_file() for name in ("clf", "gan", "rbm", "vae"))
    assert Path(report["settings_out"]) == cwd and Path(report["weights"]) == cwd / "weights"


# ---------------------------------------------------------------- scripts

def _script_sandbox(tmp_path: Path, script: str) -> Path:
    """A folder with a copy of scripts/<script> and a stand-in install.sh that only leaves a marker."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / script, tmp_path / "scripts" / script)
    if script != "install.sh":
        (tmp_path / "scripts" / "install.sh").write_text("touch installed\nexit 1\n")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--device"], "--device needs a value"),
    (["--device", "--quick"], "--device needs a value"),
    (["--device", "gpu"], "--device 'gpu' is not a device; use cpu, cuda or cuda:N"),
    (["--device=cuda:x"], "--device 'cuda:x' is not a device; use cpu, cuda or cuda:N"),
    (["--device="], "--device '' is not a device"),
])
def test_reproduce_rejects_a_bad_device_before_installing_anything(tmp_path, args, message):
    box = _script_sandbox(tmp_path, "reproduce.sh")
    proc = subprocess.run(["bash", "scripts/reproduce.sh", *args], cwd=box, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "unbound variable" not in proc.stderr
    assert not (box / "installed").exists()


def test_reproduce_accepts_a_good_device_and_goes_on_to_install(tmp_path):
    box = _script_sandbox(tmp_path, "reproduce.sh")
    (box / "notebooks").mkdir()
    (box / "notebooks" / "problem2_x.ipynb").write_text("{}")  # problem 2 exists: only the install is left to fail
    proc = subprocess.run(["bash", "scripts/reproduce.sh", "--device", "cuda:1", "--quick", "2"], cwd=box,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and (box / "installed").exists(), proc.stderr  # the stand-in install ran


def test_install_names_a_half_made_venv_and_the_fix(tmp_path):
    box = _script_sandbox(tmp_path, "install.sh")
    # what "python3 -m venv" leaves on Debian without python3-venv: a python, but no pip
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(box / ".venv")], check=True, timeout=120)
    proc = subprocess.run(["bash", "scripts/install.sh"], cwd=box, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert ".venv exists but is incomplete" in proc.stderr and "apt install python3-venv" in proc.stderr
    assert "rm -rf .venv" in proc.stderr


def test_install_checks_the_python_version_first(tmp_path):
    box = _script_sandbox(tmp_path, "install.sh")
    old = box / "python3.8"
    old.write_text('#!/bin/sh\ncase "$1" in -V) echo "Python 3.8.10";; *) exit 1;; esac\n')
    old.chmod(0o755)
    proc = subprocess.run(["bash", "scripts/install.sh"], cwd=box, env={**os.environ, "PYTHON": str(old)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "hw5 needs Python 3.10 or newer" in proc.stderr and "Python 3.8.10" in proc.stderr
    assert "PYTHON=python3.12" in proc.stderr
    assert not (box / ".venv").exists()


# --- training calls: bad data is refused before any step, never trained on silently ---------------------------

def _digits(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=gen))


def test_float_images_in_unit_range_train_exactly_like_their_uint8_originals():
    from hw5.models.rbm import RBMConfig
    from hw5.training.rbm import RBMTraining, train_rbm

    images, _ = _digits()
    as_uint8, h8 = train_rbm(images, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, device="cpu", show_progress=False)
    as_float, hf = train_rbm(images.float() / 255, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, device="cpu",
                             show_progress=False)
    assert torch.equal(as_uint8.W, as_float.W) and h8["train_mse"] == hf["train_mse"]


@pytest.mark.parametrize("images, message", [
    (lambda x: x.float(), r"train_images are floats in \[0, 255\], not in \[0, 1\]"),  # uint8 values cast to float
    (lambda x: torch.nn.functional.pad(x, (2, 2, 2, 2)), r"train_images has shape \(64, 32, 32\).*28x28"),
    (lambda x: x[:0], "train_images is empty"),
])
def test_the_vae_loop_refuses_images_it_would_train_on_wrongly(images, message):
    from hw5.training.vae import VAETraining, train_vae

    x, y = _digits()
    with pytest.raises(ValueError, match=message):
        train_vae(images(x), y, x, y, VAETraining(), 1, device="cpu", show_progress=False)


def test_empty_validation_set_and_bad_labels_are_refused():
    from hw5.training.vae import VAETraining, train_vae

    x, y = _digits()
    with pytest.raises(ValueError, match="val_images is empty"):
        train_vae(x, y, x[:0], y[:0], VAETraining(), 1, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"train_labels must lie in 0..9"):
        train_vae(x, y + 10, x, y, VAETraining(), 1, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"train_labels must be integer class labels of shape \(64,\)"):
        train_vae(x, y[:10], x, y, VAETraining(), 1, device="cpu", show_progress=False)


def test_a_batch_larger_than_the_data_is_an_error_not_an_untrained_model():
    from hw5.training.gan import GANTraining, train_gan

    x, _ = _digits(100)
    with pytest.raises(ValueError, match=r"batch_size 200 is larger than the 100 training images.*no step would run"):
        train_gan(x, GANTraining(), 1, device="cpu", show_progress=False)


def test_fewer_epochs_than_the_run_folder_holds_is_refused(tmp_path):
    from hw5.models.rbm import RBMConfig
    from hw5.training.rbm import RBMTraining, train_rbm

    x, _ = _digits()
    config = RBMTraining(RBMConfig(hidden=8), batch_size=32)
    train_rbm(x, config, 2, run_dir=tmp_path, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"already holds 2 epochs .* more than the 1 asked for; ask for epochs >= 2"):
        train_rbm(x, config, 1, run_dir=tmp_path, device="cpu", show_progress=False)
    _, history = train_rbm(x, config, 2, run_dir=tmp_path, device="cpu", show_progress=False)  # the same budget
    assert len(history["loss"]) == 2
