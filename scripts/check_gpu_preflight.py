"""What ``scripts/check_gpu.sh`` checks before it runs anything: every runtime dependency, the test tools, the
three datasets' raw files and the GPU, all in one pass, so that a machine missing several of them is told about
all of them in one message (with the fix) instead of one at a time, minutes into the check.

    python scripts/check_gpu_preflight.py --result FILE [--allow-cpu] [--runner auto|nbval|run_notebooks]

Run it with the python that will run the check, from anywhere; it needs only the standard library to start
(a python without torch must be told so, not crash). It writes ``key=value`` lines to ``--result`` for the
check to read (``device``, ``device_name``, ``runner``), prints what it found to stdout and, when something is
missing, one message to stderr naming every missing thing and its fix. Exit status 0: ready; 2: something
missing; nothing is installed or downloaded either way.

* Modules: the ``dependencies`` of ``pyproject.toml``'s ``[project]`` table (so a dependency added there is
  checked without editing this file), each imported and its installed version compared with the ``>=`` floor,
  plus the unit tests' tools (:data:`TEST_TOOLS`).
* Data: each dataset's four raw files, ``<root>/<Name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
  (torchvision's layout, the one :mod:`hw5.data` reads), in ``HW5_DATA`` (which must then be an existing folder)
  or the checkout's default roots (``data/``, then ``../shared/data``), the places :mod:`hw5.data` searches. The
  check must not download (a GPU machine is often offline), so a dataset found nowhere is missing.
* GPU: ``torch.cuda.is_available()``; ``HW5_DEVICE=cuda:N`` picks GPU N (which must exist), any other value
  means ``cuda``. ``--allow-cpu`` (``HW5_CHECK_GPU_ALLOW_CPU=1`` in the check, for the check's own tests on a
  CPU machine) runs on the CPU when torch sees no GPU.
* Notebook runner (``--runner auto``): strict nbval when ``nbval`` and ``ipykernel`` are importable, else
  ``scripts/run_notebooks.py`` (no Jupyter needed); ``--runner nbval`` or ``run_notebooks`` insists on one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The unit tests' own tools (pyproject's "dev" extra holds them with the Jupyter packages, which the check does not
# need): pytest runs them, scipy is the independent reference of tests/test_gan_eval.py's Frechet distance.
TEST_TOOLS = {"pytest": "8", "scipy": "1.11"}
IMPORT_NAMES = {"scikit-learn": "sklearn"}  # distribution name -> module name, where they differ
DATASETS = ("MNIST", "KMNIST", "FashionMNIST")
RAW_FILES = tuple(f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1"))

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:>=\s*([0-9][0-9.]*))?")


def project_dependencies(pyproject: Path = REPO / "pyproject.toml") -> dict[str, str | None]:
    """``{distribution: ">= floor or None"}`` from the ``dependencies = [...]`` list of ``[project]``.

    A scan of the one list rather than ``tomllib``, which Python 3.10 (still supported) does not have.
    """
    text = pyproject.read_text(encoding="utf-8")
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    block = project and re.search(r"^dependencies\s*=\s*\[(.*?)\]", project.group(1), re.M | re.S)
    if not block:
        raise ValueError(f"{pyproject}: no dependencies = [...] list in [project]")
    deps: dict[str, str | None] = {}
    for item in re.findall(r"""["']([^"']+)["']""", block.group(1)):
        match = _REQUIREMENT.match(item)
        if match:
            deps[match.group(1)] = match.group(2)
    return deps


def _version_tuple(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: "2.13.0+cpu" -> (2, 13, 0), "1.4rc1" -> (1, 4)."""
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def missing_modules(requirements: dict[str, str | None], python: str = sys.executable) -> list[str]:
    """One line per requirement that cannot be imported or is older than its floor; imports each one. ``python``
    is how the messages name this interpreter (the name the user gave, which may be a wrapper)."""
    problems = []
    for dist, floor in requirements.items():
        module = IMPORT_NAMES.get(dist, dist.replace("-", "_"))
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install raises anything; report it, do not crash
            problems.append(f"{dist} is not importable in {python} ({type(exc).__name__}: {exc})")
            continue
        if floor is None:
            continue
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # importable without metadata (vendored): trust it
            continue
        if _version_tuple(installed) < _version_tuple(floor):
            problems.append(f"{dist} {installed} is installed in {python}, hw5 needs {dist}>={floor}")
    return problems


def data_roots(environ: dict[str, str]) -> tuple[list[Path], list[str]]:
    """The folders searched for raw files (HW5_DATA first, then the checkout's defaults) and the problem with
    HW5_DATA, if any (set but not an existing folder: hw5.settings refuses it too)."""
    roots, problems = [], []
    value = environ.get("HW5_DATA", "")
    if value:
        path = Path(value).expanduser()
        if path.is_dir():
            roots.append(path)
        else:
            problems.append(f"HW5_DATA is {value!r}, which is not an existing folder: point it at the folder "
                            f"holding <Name>/raw/*.gz, or unset it")
    return roots + [REPO / "data", REPO.parent / "shared" / "data"], problems


def find_datasets(roots: list[Path]) -> tuple[dict[str, Path], list[str]]:
    """``({dataset: first root holding its four raw files}, [datasets found in no root])``."""
    found, missing = {}, []
    for name in DATASETS:
        holder = next((r for r in roots if all((r / name / "raw" / f).is_file() for f in RAW_FILES)), None)
        if holder is None:
            missing.append(name)
        else:
            found[name] = holder
    return found, missing


def _gpu(allow_cpu: bool, hw5_device: str) -> tuple[str, str, list[str]]:
    """(device, device name, problems); torch must be importable."""
    import torch

    said = (f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
            f"CUDA available: {torch.cuda.is_available()}")
    print(f"python: {sys.executable}; {said}")
    device = hw5_device if hw5_device.startswith("cuda:") else "cuda"
    if torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            return device, "none", [f"HW5_DEVICE={hw5_device} but torch sees {torch.cuda.device_count()} GPU(s): "
                                    f"choose cuda:0 to cuda:{torch.cuda.device_count() - 1}, or unset HW5_DEVICE"]
        return device, torch.cuda.get_device_name(torch.device(device)), []
    if allow_cpu:
        print("no CUDA GPU: running on the CPU because HW5_CHECK_GPU_ALLOW_CPU=1 (this is not a GPU check)")
        return "cpu", "cpu (HW5_CHECK_GPU_ALLOW_CPU=1, no GPU)", []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    return device, "none", [
        f"no CUDA GPU is visible to torch ({said}; CUDA_VISIBLE_DEVICES={visible}). This check needs an NVIDIA GPU "
        "and a CUDA build of torch: run it on a GPU machine; if this machine has one (nvidia-smi lists it) but "
        "torch is a CPU build, set PYTHON to a python whose torch sees the GPU, or rerun with --install and "
        "HW5_TORCH_INDEX=https://download.pytorch.org/whl/cu126 after rm -rf .venv. On a CPU-only machine use "
        "bash scripts/test.sh"]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Check everything, write the result file, print one message naming every missing thing; 0 or 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", required=True, help="write device=, device_name=, runner= lines here")
    parser.add_argument("--python", default=sys.executable, help="how to name this python in messages")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when torch sees no GPU")
    parser.add_argument("--runner", choices=("auto", "nbval", "run_notebooks"), default="auto",
                        help="how the notebooks run (default: nbval where it and ipykernel are importable)")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    problems: list[str] = []
    python = args.python
    if sys.version_info < (3, 10):
        problems.append(f"{python} is Python {sys.version.split()[0]}; hw5 needs Python 3.10 or newer")
    requirements = {**project_dependencies(), **TEST_TOOLS}
    module_problems = missing_modules(requirements, python)
    problems += module_problems
    device, device_name = "none", "none"
    if _importable("torch"):
        device, device_name, gpu_problems = _gpu(args.allow_cpu, environ.get("HW5_DEVICE", ""))
        problems += gpu_problems
    if not module_problems:
        try:
            import hw5
        except Exception as exc:  # noqa: BLE001
            problems.append(f"hw5 cannot be imported from {REPO} ({type(exc).__name__}: {exc})")
        else:
            if Path(hw5.__file__).resolve().parent != REPO / "hw5":
                problems.append(f"import hw5 finds {hw5.__file__}, not this checkout's {REPO / 'hw5'}: put {REPO} "
                                "first on PYTHONPATH (check_gpu.sh does)")
    roots, root_problems = data_roots(environ)
    problems += root_problems
    found, missing = find_datasets(roots)
    for name, root in found.items():
        print(f"data: {name} in {root / name / 'raw'}")
    if missing:
        looked = ", ".join(str(r) for r in roots)
        problems.append(f"the raw files of {', '.join(missing)} are in none of {looked}: put each dataset's four "
                        f"files ({', '.join(RAW_FILES)}) in <folder>/<Name>/raw/ and point HW5_DATA at <folder> "
                        "(this check downloads nothing)")
    has_nbval = _importable("nbval") and _importable("ipykernel")
    if args.runner == "nbval" and not has_nbval:
        problems.append(f"the notebooks were asked to run under nbval, but nbval or ipykernel is not importable in "
                        f"{python}: {python} -m pip install nbval ipykernel, or leave the runner "
                        "to the check (unset HW5_CHECK_GPU_RUNNER)")
    use_nbval = args.runner == "nbval" or args.runner == "auto" and has_nbval
    runner = "nbval" if use_nbval else "scripts/run_notebooks.py"
    Path(args.result).write_text(f"device={device}\ndevice_name={device_name}\nrunner={runner}\n", encoding="utf-8")
    if problems:
        fix = []
        if module_problems:
            wanted = " ".join(f"'{d}>={f}'" if f else d for d, f in requirements.items()
                              if any(p.startswith(f"{d} ") for p in module_problems))
            fix.append(f"  modules: {python} -m pip install {wanted} (or rerun with --install, which makes "
                       ".venv with everything; needs the internet)")
        print(f"check_gpu.sh: cannot start, {len(problems)} thing(s) missing (nothing has run):\n"
              + "\n".join(f"  - {p}" for p in problems) + ("\nFix:\n" + "\n".join(fix) if fix else ""),
              file=sys.stderr)
        return 2
    print(f"ready: notebooks will run with {runner}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
