"""Wall time of the whole homework: every problem notebook's code cells, every cell timed.

    python benchmarks/time_homework.py                   every problem notebook, full mode, default device
    python benchmarks/time_homework.py --quick 2         Problem 2 in quick mode (HW5_QUICK=1)
    python benchmarks/time_homework.py --device cuda     HW5_DEVICE=cuda
    python benchmarks/time_homework.py --shipped         HW5_USE_SHIPPED=1 (evaluate the shipped weights)

The problem notebooks are the files ``notebooks/problem*_*.ipynb`` (problem number: the digits after
``problem``), found as ``scripts/run_notebooks.py`` finds them, so a new problem's notebook is timed without
editing this script; problem numbers select some of them.

Each notebook runs in its own Python process (``scripts/run_notebooks.py``, the in-process runner, started
as a subprocess), so notebooks share no state, imports or warm caches; the notebooks run one after another,
never side by side, so they do not compete for the CPU or GPU. This checkout's ``hw5`` is put first on the
children's ``PYTHONPATH``. The notebooks' own output streams through; at the end comes a table of the
slowest cells (``--top``) and one line per notebook, and last exactly one line::

    homework: p1=<s> p2=<s> p3=<s> total=<s> device=<name>

with each notebook's process wall time in seconds (only the problems run are listed), ``total`` the wall time
of this whole command, and the device (``cpu`` or the CUDA device's name). Exit status 1 when a cell failed.

Quick mode first deletes its scratch outputs (``figures/quick``, ``runs/quick`` under ``$HW5_OUT`` or the
repository, as ``scripts/test.sh`` does), so every training runs instead of being answered from a finished
checkpoint. Full mode deletes nothing: it trains everything (hours on a CPU) unless ``runs/problemN`` holds
finished checkpoints, which then answer at once; move ``runs/`` aside to time the trainings.
"""

from __future__ import annotations

import time

_START = time.perf_counter()  # "total" is the wall time of the whole command, imports included

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNNER = REPO_ROOT / "scripts" / "run_notebooks.py"


def _runner() -> ModuleType:
    """``scripts/run_notebooks.py`` as a module (it imports only the standard library): its notebook discovery
    is the one this script and the runner it starts share."""
    spec = importlib.util.spec_from_file_location("run_notebooks", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_notebooks"] = module  # its dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def select_problems(requested: list[int], notebooks_dir: Path) -> list[int]:
    """The problem numbers to run, in increasing order: ``requested`` (repeats dropped), else every problem with
    a notebook in ``notebooks_dir`` (``problem*_*.ipynb``). Raises ``ValueError`` naming a requested number that
    has no notebook, and the numbers that have one."""
    found = list(_runner().discover_notebooks(notebooks_dir))
    problems = sorted(set(requested)) or found
    missing = sorted(set(problems) - set(found))
    if missing or not problems:
        raise ValueError(f"no notebook {notebooks_dir}/problem{{N}}_*.ipynb for problem(s) {missing or 'any'}; "
                         f"the problem numbers are {', '.join(map(str, found)) or 'none'}")
    return problems


def device_name(device: str | None) -> str:
    """``cpu`` or the CUDA device's name, for the device the notebooks will pick: ``device``, else
    ``HW5_DEVICE``, else CUDA when torch sees a GPU (as ``hw5.get_device`` chooses). Raises ``ValueError``
    for a CUDA device torch cannot see."""
    import torch

    name = device or os.environ.get("HW5_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type != "cuda":
        return dev.type
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                         "use --device cpu, or run on a machine with a GPU and a CUDA build of torch")
    return torch.cuda.get_device_name(dev)


def checked_settings(args: argparse.Namespace) -> object:
    """This checkout's ``hw5.Settings.from_env()`` for the environment the notebooks will get (the switches
    given here included): every ``HW5_*`` variable is checked before the first notebook starts, e.g. an
    ``HW5_OUT``, ``HW5_DATA`` or ``HW5_CACHE`` folder that does not exist, with the error the notebooks' first
    cell would give an hour later. Raises ``ValueError`` or ``FileNotFoundError``."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # the hw5 the children import (first on their PYTHONPATH)
    import hw5

    switches = {"HW5_QUICK": "1" if args.quick else None, "HW5_USE_SHIPPED": "1" if args.shipped else None,
                "HW5_DEVICE": args.device}
    return hw5.Settings.from_env({**os.environ, **{k: v for k, v in switches.items() if v is not None}})


def run_problem(problem: int, switches: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """Run one notebook in a fresh process with the runner; returns (process wall seconds, the runner's
    result for it). Raises ``RuntimeError`` when the runner produced no result (it crashed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(RUNNER), *switches, "--json", str(out), str(problem)],
                              env=env, cwd=REPO_ROOT)
        seconds = time.perf_counter() - start
        if not out.exists():
            raise RuntimeError(f"problem {problem}: the runner exited with status {proc.returncode} without "
                               f"writing results; see its output above")
        (result,) = json.loads(out.read_text())
    return seconds, result


def timing_table(results: dict[int, dict], top: int) -> str:
    """The ``top`` slowest cells of all notebooks (every cell when ``top`` is 0), slowest first."""
    rows = [(cell["seconds"], p, cell) for p, r in results.items() for cell in r["cells"]]
    rows.sort(key=lambda row: -row[0])
    if top:
        rows = rows[:top]
    lines = [f"{'seconds':>9s}  {'problem':>7s}  {'cell':>4s}  {'status':7s}  first line"]
    for seconds, p, cell in rows:
        lines.append(f"{seconds:9.1f}  {p:7d}  {cell['index']:4d}  {cell['status']:7s}  {cell['first_line'][:90]}")
    return "\n".join(lines)


def main() -> int:
    """Parse the switches, run the chosen notebooks one after another, print the table and the last line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # No argparse choices: with nargs="*", Python 3.11 checks the empty default against them and fails.
    parser.add_argument("problems", nargs="*", type=int,
                        help="problem numbers, e.g. 1 2 3 (default: every notebooks/problem*_*.ipynb)")
    parser.add_argument("--quick", action="store_true", help="quick mode (HW5_QUICK=1)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (HW5_DEVICE; default: cuda when available)")
    parser.add_argument("--shipped", action="store_true", help="evaluate the shipped weights (HW5_USE_SHIPPED=1)")
    parser.add_argument("--top", type=int, default=15, help="rows of the slowest-cells table (0: every cell)")
    args = parser.parse_args()
    try:
        problems = select_problems(args.problems, REPO_ROOT / "notebooks")
        device = device_name(args.device)
        out_root = checked_settings(args).out
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))

    switches = (["--quick"] if args.quick else []) + (["--shipped"] if args.shipped else [])
    switches += ["--device", args.device] if args.device else []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))

    if args.quick:
        for scratch in (out_root / "figures" / "quick", out_root / "runs" / "quick"):
            shutil.rmtree(scratch, ignore_errors=True)

    walls: dict[int, float] = {}
    results: dict[int, dict] = {}
    for p in problems:  # one after another: side by side they would compete for the same cores or GPU
        print(f"\n##### problem {p}", flush=True)
        walls[p], results[p] = run_problem(p, switches, env)

    print(f"\nslowest cells (of {sum(len(r['cells']) for r in results.values())} run):")
    print(timing_table(results, args.top))
    print()
    for p, r in results.items():
        cell_sum = sum(c["seconds"] for c in r["cells"])
        status = "ok" if r["error"] is None else f"FAILED at code cell {r['error']['index']}: {r['error']['error'][:100]}"
        print(f"problem {p}: {r['passed']}/{r['total']} cells passed, cells {cell_sum:.1f} s, "
              f"process {walls[p]:.1f} s ({status})")
    total = time.perf_counter() - _START
    print("homework: " + " ".join(f"p{p}={walls[p]:.1f}" for p in problems) + f" total={total:.1f} device={device}",
          flush=True)
    return 0 if all(r["error"] is None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
