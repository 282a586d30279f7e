"""Execute notebooks' code cells in-process, without Jupyter, timing every cell.

    python scripts/run_notebooks.py                          every problem notebook, full mode
    python scripts/run_notebooks.py --quick 2 3              problems 2 and 3 in quick mode (HW5_QUICK=1)
    python scripts/run_notebooks.py --device cuda 1          HW5_DEVICE=cuda
    python scripts/run_notebooks.py --shipped                HW5_USE_SHIPPED=1 (evaluate the shipped weights)
    python scripts/run_notebooks.py path/to/any.ipynb        any notebook by path
    python scripts/run_notebooks.py --json times.json 2      also write the results as JSON

Problem numbers select ``notebooks/problem{N}_*.ipynb`` as ``scripts/reproduce.sh`` does; no notebook
argument means every notebook matching ``notebooks/problem*_*.ipynb`` (the problem number is the digits after
``problem``), in problem order, so a new problem's notebook is run without editing this script.

For each notebook, every code cell runs in order, in one fresh namespace per notebook (a dict with
``__name__ == "__main__"``), in this process, with the notebook's folder as the working
directory (as Jupyter does) and matplotlib on the Agg backend (``plt.show()`` does nothing; every figure is
closed after its cell, as Jupyter's inline backend does). A notebook stops at its first failing cell, which
is reported with its index, its first line and the traceback; the next notebook still runs. Lines starting
with ``%`` or ``!`` (IPython magics and shell escapes) are not executed: they are skipped with a note, and a
cell starting with a ``%%`` cell magic is skipped whole. The notebook files are only read, never written.

Exit status: 0 when every cell of every notebook passed, 1 when a cell failed, 2 for a usage error.

As a module::

    from run_notebooks import run_notebook
    result = run_notebook("notebooks/problem2_rbm.ipynb", env={"HW5_QUICK": "1"})
    result.passed, result.total, result.seconds, result.error
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import gc
import json
import linecache
import os
import re
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    # Run as a script, sys.path[0] is scripts/, not the checkout: put the checkout first (and on PYTHONPATH, for
    # any process a notebook starts) so the notebooks import this checkout's hw5, not another install, and their
    # first cell (scripts/ensure_hw5.py) finds hw5 instead of trying `pip install -e`, which fails offline.
    sys.path.insert(0, str(REPO_ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class CellResult:
    """One executed (or skipped) code cell. ``index`` counts code cells only, from 0."""

    index: int
    first_line: str
    seconds: float
    status: str  # PASSED, FAILED or SKIPPED (a %% cell magic)
    notes: list[str] = field(default_factory=list)


@dataclass
class CellError:
    """The first failing cell of a notebook: its code-cell index (from 0), first line, error and traceback."""

    index: int
    first_line: str
    error: str  # "ExceptionType: message"
    traceback: str


@dataclass
class NotebookResult:
    """What running one notebook gave: per-cell results for the cells that ran, the code-cell count,
    the first error (None when every cell passed) and the wall time of the whole notebook."""

    path: str
    total: int
    cells: list[CellResult] = field(default_factory=list)
    error: CellError | None = None
    wall_seconds: float = 0.0

    @property
    def passed(self) -> int:
        """Number of code cells that ran without an error."""
        return sum(c.status == PASSED for c in self.cells)

    @property
    def seconds(self) -> list[float]:
        """Seconds of every cell that ran (or was skipped), in order."""
        return [c.seconds for c in self.cells]

    @property
    def ok(self) -> bool:
        """True when no cell failed."""
        return self.error is None

    def to_dict(self) -> dict:
        """A JSON-serialisable dict, with ``passed`` included."""
        return {**asdict(self), "passed": self.passed}


def read_code_cells(path: str | os.PathLike) -> list[str]:
    """The sources of the notebook's code cells, in order. Reads the .ipynb JSON directly (nbformat 4), so
    nothing from Jupyter is needed."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    if "cells" not in nb:
        raise ValueError(f"{path} has no 'cells' list: not an nbformat-4 notebook (convert it with "
                         "`jupyter nbconvert --to notebook` first)")
    sources = []
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            sources.append("".join(src) if isinstance(src, list) else src)
    return sources


def first_line(source: str) -> str:
    """The first line worth showing: the first non-blank line that is not an nbval directive comment
    (every cell of this project's notebooks starts with ``# NBVAL_IGNORE_OUTPUT``, which names nothing)."""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("# NBVAL_"):
            return stripped
    return ""


def strip_magics(source: str) -> tuple[str, list[str]]:
    """Replace IPython magic (``%``) and shell (``!``) lines by ``pass`` with the same indentation, so the
    cell stays valid Python; returns the new source and one note per replaced line.

    Only called on a cell that does not compile as it is: in a cell that compiles, a line starting with
    ``%`` is Python (a continuation line or the inside of a string) and must not be touched.
    """
    out, notes = [], []
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.lstrip()
        if stripped[:1] in ("%", "!"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}pass")
            notes.append(f"line {number} not executed (IPython magic or shell command): {stripped}")
        else:
            out.append(line)
    return "\n".join(out) + "\n", notes


def _compile_cell(source: str, filename: str) -> tuple[object, object | None, list[str]]:
    """Compile a cell: its body, and its last statement separately when that is an expression (evaluated
    so that its value can be echoed, as Jupyter shows it). Returns (body, last expression or None, notes)."""
    notes: list[str] = []
    try:
        tree = ast.parse(source, filename)
    except SyntaxError:
        if not any(line.lstrip()[:1] in ("%", "!") for line in source.splitlines()):
            raise
        source, notes = strip_magics(source)
        tree = ast.parse(source, filename)
    # Register the source so that tracebacks show the cell's lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), last, notes


@contextlib.contextmanager
def _notebook_context(path: Path, env: Mapping[str, str] | None, main: types.ModuleType) -> Iterator[None]:
    """Jupyter's surroundings for one notebook, undone afterwards: the notebook's folder as the working
    directory and first on sys.path, the given environment variables, matplotlib on Agg with a harmless
    ``plt.show()``, ``sys.argv`` holding no runner switches, and ``main`` (whose dict is the notebook's
    namespace) as ``sys.modules["__main__"]``, as IPython does, so that pickle finds classes and functions
    the notebook defines."""
    old_cwd, old_argv, old_path, old_main = os.getcwd(), sys.argv[:], sys.path[:], sys.modules["__main__"]
    env = {**(env or {}), "MPLBACKEND": "Agg"}  # Agg renders without a display, for anything importing pyplot
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    plt, old_show = None, None
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)  # for a pyplot already imported; left on Agg afterwards
        import matplotlib.pyplot as plt

        old_show = plt.show
        # On Agg, plt.show() only warns ("non-interactive"); Jupyter displays and closes, here figures are
        # closed after each cell, so show has nothing to do.
        plt.show = lambda *args, **kwargs: None
    except ImportError:  # a notebook without matplotlib needs none of this
        pass
    os.chdir(path.parent)
    sys.path.insert(0, str(path.parent))  # Jupyter's kernel imports modules beside the notebook
    sys.argv = [str(path)]
    sys.modules["__main__"] = main
    try:
        yield
    finally:
        sys.modules["__main__"] = old_main
        os.chdir(old_cwd)
        sys.argv, sys.path[:] = old_argv, old_path
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if plt is not None:
            plt.show = old_show


def _close_figures() -> None:
    """Close every pyplot figure, as Jupyter's inline backend does after a cell (keeps memory flat)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")


def _release_memory() -> None:
    """Free what a finished notebook held, so the next notebook in this process starts with the memory
    (including the GPU's cached blocks) a fresh kernel would have."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def run_notebook(path: str | os.PathLike, env: Mapping[str, str] | None = None,
                 on_cell: Callable[[CellResult], None] | None = None) -> NotebookResult:
    """Run the notebook's code cells in order in one fresh ``__main__`` namespace, in this process.

    ``env`` sets environment variables for the duration of the run (restored afterwards); ``on_cell`` is
    called after every cell (for progress reports). Stops at the first cell that raises (any ``Exception``
    or ``SystemExit``; ``KeyboardInterrupt`` propagates) and records it in ``error``; the cells after it
    are not run. The notebook file is only read.
    """
    path = Path(path).resolve()
    sources = read_code_cells(path)
    result = NotebookResult(path=str(path), total=len(sources))
    main = types.ModuleType("__main__")
    namespace = main.__dict__  # a fresh dict with __name__ == "__main__"
    namespace["__builtins__"] = builtins
    start = time.perf_counter()
    with _notebook_context(path, env, main):
        for index, source in enumerate(sources):
            head = first_line(source)
            cell_start = time.perf_counter()
            if source.lstrip().startswith("%%"):
                cell = CellResult(index, head, 0.0, SKIPPED,
                                  [f"cell not executed: it starts with the cell magic {source.split()[0]}"])
                result.cells.append(cell)
                if on_cell:
                    on_cell(cell)
                continue
            filename = f"<{path.name} code cell {index}>"
            notes: list[str] = []
            compiled = False
            try:
                body, last, notes = _compile_cell(source, filename)
                compiled = True
                exec(body, namespace)  # noqa: S102 - executing the notebook is the point
                if last is not None:
                    value = eval(last, namespace)  # noqa: S307
                    if value is not None:
                        print(repr(value))  # the cell's last expression, echoed as Jupyter displays it
            except (Exception, SystemExit) as exc:
                seconds = time.perf_counter() - cell_start
                sys.stdout.flush()
                if not compiled:  # a SyntaxError of the cell itself: no frame of the cell to show
                    text = "".join(traceback.format_exception_only(type(exc), exc))
                else:  # drop this function's frame: the traceback starts in the cell
                    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
                    text = "".join(traceback.format_exception(type(exc), exc, tb))
                result.error = CellError(index, head, f"{type(exc).__name__}: {exc}", text)
                cell = CellResult(index, head, seconds, FAILED, notes)
                result.cells.append(cell)
                if on_cell:
                    on_cell(cell)
                break
            finally:
                _close_figures()
            cell = CellResult(index, head, time.perf_counter() - cell_start, PASSED, notes)
            result.cells.append(cell)
            sys.stdout.flush()
            if on_cell:
                on_cell(cell)
    result.wall_seconds = time.perf_counter() - start
    namespace.clear()
    _release_memory()
    return result


NOTEBOOK_PATTERN = "problem*_*.ipynb"
_PROBLEM_NUMBER = re.compile(r"problem(\d+)_")  # the digits after "problem": problem12_x.ipynb is problem 12


def discover_notebooks(folder: str | os.PathLike) -> dict[int, Path]:
    """The problem notebooks in ``folder``, by problem number in increasing order: every file matching
    ``problem*_*.ipynb`` whose name has digits between ``problem`` and the first ``_`` (``problem4_x.ipynb`` is
    problem 4; ``problem_notes_x.ipynb`` names no problem and is not one). Raises ``ValueError`` when two
    notebooks claim one number, naming both."""
    found: dict[int, Path] = {}
    for path in sorted(Path(folder).glob(NOTEBOOK_PATTERN)):
        match = _PROBLEM_NUMBER.match(path.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number in found:
            raise ValueError(f"problem {number} has two notebooks, {found[number].name} and {path.name} in "
                             f"{folder}; rename or remove one")
        found[number] = path
    return dict(sorted(found.items()))


def resolve_notebooks(items: Sequence[str], root: Path = REPO_ROOT) -> list[Path]:
    """Problem numbers (``notebooks/problem{N}_*.ipynb`` under ``root``) and paths to notebooks; no items
    means every problem notebook :func:`discover_notebooks` finds under ``root / "notebooks"``, in problem
    order. Raises ``ValueError`` naming what is missing."""
    folder = root / "notebooks"
    found = discover_notebooks(folder)
    if not items and not found:
        raise ValueError(f"no notebook matches {folder}/{NOTEBOOK_PATTERN}; give a path to an .ipynb")
    paths = []
    for item in items or [str(n) for n in found]:
        if item.isdigit():
            if int(item) not in found:
                raise ValueError(f"problem {item}: no notebook {folder}/problem{item}_*.ipynb (problems found: "
                                 f"{', '.join(map(str, found)) or 'none'}); give a problem number that exists or "
                                 "a path")
            paths.append(found[int(item)])
        else:
            p = Path(item)
            if not p.is_file():
                raise ValueError(f"{item}: no such notebook file; give a path to an .ipynb or a problem number")
            paths.append(p)
    return paths


def _print_cell(nb_name: str, total: int) -> Callable[[CellResult], None]:
    def report(cell: CellResult) -> None:
        for note in cell.notes:
            print(f"[{nb_name}] note: {note}", flush=True)
        print(f"[{nb_name}] code cell {cell.index} ({cell.index + 1} of {total}) {cell.status} in {cell.seconds:.1f} s: "
              f"{cell.first_line[:80]}", flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse the switches, set the environment, run each notebook, print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Problem numbers select notebooks/problem{N}_*.ipynb; default: every "
                                            "notebooks/problem*_*.ipynb, in problem order.")
    parser.add_argument("notebooks", nargs="*", help="problem numbers (e.g. 1 2 3) or paths to .ipynb files")
    parser.add_argument("--quick", action="store_true", help="set HW5_QUICK=1 (tiny budgets)")
    parser.add_argument("--device", help="set HW5_DEVICE (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--shipped", action="store_true", help="set HW5_USE_SHIPPED=1 (evaluate shipped weights)")
    parser.add_argument("--json", metavar="PATH", help="also write the results (per-cell seconds, errors) as JSON")
    args = parser.parse_args(argv)
    try:
        paths = resolve_notebooks(args.notebooks)
    except ValueError as exc:
        parser.error(str(exc))
    # Set before any notebook runs (and left set): the notebooks read them when their first cell runs.
    if args.quick:
        os.environ["HW5_QUICK"] = "1"
    if args.device:
        os.environ["HW5_DEVICE"] = args.device
    if args.shipped:
        os.environ["HW5_USE_SHIPPED"] = "1"

    results = []
    for path in paths:
        print(f"=== {path}", flush=True)
        result = run_notebook(path, on_cell=_print_cell(path.name, len(read_code_cells(path))))
        results.append(result)
        if result.error is not None:
            e = result.error
            print(f"[{path.name}] FAILED at code cell {e.index} ({e.first_line[:80]}):\n{e.traceback}",
                  file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
    print("\nsummary:")
    for r in results:
        status = "ok" if r.ok else f"FAILED at code cell {r.error.index}: {r.error.error.splitlines()[0][:100]}"
        print(f"  {Path(r.path).name}: {r.passed}/{r.total} cells passed in {r.wall_seconds:.1f} s ({status})")
    print(f"notebooks: {sum(r.passed for r in results)}/{sum(r.total for r in results)} cells passed", flush=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
