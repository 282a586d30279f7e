"""Installing hw5: an installed (non-editable) hw5 used from another folder writes nothing into site-packages,
and scripts/install.sh names a half-made venv or a too old Python with the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The raw datasets: HW5_DATA where it is set (a machine whose data was carried into a folder of its own), as
# tests/conftest.py makes every test search it, else the read-only copy beside the repository.
DATA = Path(os.environ["HW5_DATA"]) if os.environ.get("HW5_DATA") else REPO.parent / "shared" / "data"


@pytest.mark.slow
def test_an_installed_hw5_used_from_another_folder_writes_nothing_into_site_packages(tmp_path):
    """pip install --target (a non-editable install) of this checkout; import it with PYTHONPATH from an
    unrelated folder, load a dataset and shipped weights, train one epoch of each family into a folder of the
    user's choosing: caches go to the user cache, runs where asked, default outputs to the working folder, and
    not one file under the install target changes."""
    if not (DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"no MNIST raw files in {DATA} (HW5_DATA, else ../shared/data beside the repository)")
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
        train_gan(xs, GANTraining(batch_size=32), 1, run_dir=runs / "gan", device="cpu", show_progress=False)
        train_rbm(xs, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, run_dir=runs / "rbm", device="cpu",
                  show_progress=False)
        train_vae(xs, ys, xs, ys, VAETraining(batch_size=32), 1, run_dir=runs / "vae", device="cpu", show_progress=False)
        train_classifier(xs, ys, ClassifierTraining(batch_size=32), 1, run_dir=runs / "clf", device="cpu",
                         show_progress=False)
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
    proc = subprocess.run([sys.executable, "-c", code, str(DATA)], cwd=cwd, env=env, capture_output=True,
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


def _install_sandbox(tmp_path: Path) -> Path:
    """A folder with a copy of scripts/install.sh."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    return tmp_path


def test_install_names_a_half_made_venv_and_the_fix(tmp_path):
    box = _install_sandbox(tmp_path)
    # what "python3 -m venv" leaves on Debian without python3-venv: a python, but no pip
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(box / ".venv")], check=True, timeout=120)
    proc = subprocess.run(["bash", "scripts/install.sh"], cwd=box, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert ".venv exists but is incomplete" in proc.stderr and "apt install python3-venv" in proc.stderr
    assert "rm -rf .venv" in proc.stderr


def test_install_checks_the_python_version_first(tmp_path):
    box = _install_sandbox(tmp_path)
    old = box / "python3.8"
    old.write_text('#!/bin/sh\ncase "$1" in -V) echo "Python 3.8.10";; *) exit 1;; esac\n')
    old.chmod(0o755)
    proc = subprocess.run(["bash", "scripts/install.sh"], cwd=box, env={**os.environ, "PYTHON": str(old)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "hw5 needs Python 3.10 or newer" in proc.stderr and "Python 3.8.10" in proc.stderr
    assert "PYTHON=python3.12" in proc.stderr
    assert not (box / ".venv").exists()


def test_the_unit_tests_collect_where_no_jupyter_package_can_be_imported(tmp_path):
    """A GPU machine's python often has torch and the runtime dependencies but no Jupyter: the unit tests must
    still collect there (no test module imports nbformat, nbval, nbclient, nbconvert or ipykernel)."""
    blocked = ("nbformat", "nbval", "nbclient", "nbconvert", "ipykernel", "jupyter_client", "jupyter_core")
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoJupyter:\n"
        f"    blocked = {blocked!r}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.blocked:\n"
        "            raise ImportError(f'{name} is blocked: a machine without Jupyter')\n"
        "sys.meta_path.insert(0, _NoJupyter())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    probe = subprocess.run([sys.executable, "-c", "import nbformat"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker works
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             str(REPO / "tests")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " tests collected" in result.stdout.splitlines()[-1], result.stdout[-500:]
