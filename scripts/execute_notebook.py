"""Execute notebooks in a Jupyter kernel, show the progress on the terminal, and stamp their provenance.

    python scripts/execute_notebook.py notebooks/problem2_rbm.ipynb             in place
    python scripts/execute_notebook.py --output-dir figures/quick/notebooks nb.ipynb   executed copy elsewhere
    python scripts/execute_notebook.py --check notebooks/problem*_*.ipynb       only check the stamps

``scripts/reproduce.sh`` runs every committed notebook through this script; committed notebooks are written by
nothing else. The mode and the device are the notebook's own: they come from the ``HW5_*`` environment
variables (``HW5_QUICK``, ``HW5_USE_SHIPPED``, ``HW5_DEVICE``; see ``hw5/settings.py``), which the kernel
inherits from this process.

**Execution.** Each notebook runs top to bottom in a fresh kernel (``nbclient``, what ``jupyter nbconvert
--execute`` uses), with the notebook's folder as the working directory, so the outputs are the kernel's outputs.
Two differences from nbconvert, both about what is stored: no per-cell execution timestamps are recorded (old
ones are removed), and consecutive stream outputs of a cell are merged with carriage returns applied, as a
Jupyter front end shows them (a progress bar is stored as its last state, not as hundreds of redraws).

**The terminal** shows which notebook and cell is running, everything the cells print while they run, the
training's own ``tqdm`` progress bar (steps done, rate, elapsed and estimated time left) and each cell's elapsed
time::

    [problem2_rbm.ipynb] cell 12/40 (code 6/19) running: histories = {M: train_rbm(...
    [problem2_rbm.ipynb cell 12] rbm M=16:  40%|████      | 2345/5875 [00:25<00:37, 94.1it/s, epoch=3, ...]
    [problem2_rbm.ipynb] cell 12/40 (code 6/19) done in 62.3 s (notebook so far: 1 min 30 s)

The bar comes through a side channel, not through the cell's output: the runner sets ``HW5_PROGRESS`` to a
temporary file in the kernel's environment, a notebook passes ``show_progress=S.progress`` (its
``hw5.Settings``, which opens that file) to the training, and the runner follows the file, showing the bar's
newest state at most every second, redrawn in place, on a terminal, and at most every 10 s, a line each,
in a log or a pipe, plus its final state when the cell ends. The file is removed afterwards; nothing of it is
stored in the notebook. A cell that has shown nothing for a minute gets a line saying how long it has been
running, so a long computation that shows no progress bar of its own is not mistaken for a hung run.

Those times are this machine's and go to the terminal only, never into the notebook. A failing cell stops its
notebook, which is then not written (an in-place notebook keeps its last good execution); the next notebook
still runs, and the exit status is 1.

**Stamps.** An executed notebook is stamped before it is written (atomically: a temporary file, then a
rename):

* each code cell's ``metadata["hw5"] = {"source_sha256": <SHA-256 of the cell's source, UTF-8>}``;
* the notebook's ``metadata["hw5"] = {"mode": "full" | "shipped" | "quick", "device": <the device the notebook
  resolved, type and name, e.g. "cuda (NVIDIA H100 80GB HBM3)">, "torch": <torch.__version__>, "commit": <the
  checkout's git HEAD, with "+dirty" when tracked files other than notebooks/*.ipynb and figures/ differ from
  it>}``. Mode, device and torch version are read in a separate process with the kernel's interpreter and
  environment before the first cell runs (a bad ``HW5_*`` value fails there, at no cost); the commit is read
  once per invocation, before any notebook runs.

:func:`check_notebook` (used by ``tests/test_provenance.py``) verifies a notebook against those stamps: every
code cell is stamped and its source still hashes to the stamp (a cell edited after its execution fails), the
execution counts are 1..N over the code cells, the notebook's stamp is complete, and no output holds a home,
temporary or work folder's absolute path. This module's checking half needs only the standard library; the
executing half imports ``nbclient`` and ``nbformat`` when it runs.

Exit status: 0 when every notebook ran (or passed the check), 1 when one failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
MODES = ("full", "shipped", "quick")
COMMITTED_MODES = ("full", "shipped")  # a quick execution is a test, never a committed result
STAMP_KEYS = ("mode", "device", "torch", "commit")

# Absolute paths of a particular machine: home folders (Linux, macOS, Windows), temporary folders and the
# work/mount roots of build machines. A notebook's outputs name files relative to the repository instead.
MACHINE_PATH = re.compile(r"(?<![\w.~-])(?:/home/|/Users/|/root/|/tmp/|/var/folders/|/private/var/|/work/|/mnt/"
                          r"|/scratch/|[A-Za-z]:\\\\?Users\\)")

# A wall-clock time or a thread count in an output line, and the words that say whose it is. Such numbers change
# from machine to machine, so no answer may rest on them and each line that shows one says which machine it is
# from: "this machine" (measured in this execution, or a history this execution trained), "the machine this
# notebook ran on", or "the shipped weights' training run" (a history read with the shipped weights).
CLOCK_READING = re.compile(r"(?<![\w.])\d[\d,.]*\s?(?:ms|s|sec|seconds?|min|minutes?|hours?)\b|\bthreads?\b")
CLOCK_OWNER = re.compile(r"this machine|the machine this notebook ran on|the shipped weights' training run")


# ---------------------------------------------------------------------------------------------------------------
# Stamps and their check: plain JSON dicts, standard library only.


def source_text(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string: nbformat's JSON stores it as a list of lines, nbformat's objects as one
    string; both hash the same."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def source_sha256(cell: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the cell's source text encoded as UTF-8."""
    return hashlib.sha256(source_text(cell).encode("utf-8")).hexdigest()


def stamp_cells(nb: Mapping[str, Any]) -> None:
    """Write ``metadata["hw5"]["source_sha256"]`` into every code cell of ``nb`` and drop nbclient's
    per-cell ``metadata["execution"]`` timestamps from every cell (in place)."""
    for cell in nb["cells"]:
        cell.setdefault("metadata", {}).pop("execution", None)
        if cell["cell_type"] == "code":
            cell["metadata"]["hw5"] = {"source_sha256": source_sha256(cell)}


def stamp_notebook(nb: Mapping[str, Any], provenance: Mapping[str, str]) -> None:
    """Stamp an executed notebook (in place): the code cells' source hashes (:func:`stamp_cells`) and the
    notebook's ``metadata["hw5"]``, which must hold exactly a valid mode, the device, torch and commit."""
    missing = [k for k in STAMP_KEYS if not isinstance(provenance.get(k), str) or not provenance[k]]
    if missing or set(provenance) != set(STAMP_KEYS):
        raise ValueError(f"a notebook stamp needs non-empty strings for exactly {list(STAMP_KEYS)}; "
                         f"got {dict(provenance)}")
    if provenance["mode"] not in MODES:
        raise ValueError(f"mode {provenance['mode']!r} is not one of {list(MODES)}")
    stamp_cells(nb)
    nb.setdefault("metadata", {})["hw5"] = {k: provenance[k] for k in STAMP_KEYS}


def problem_number(name: str) -> int | None:
    """N of a ``problemN_*.ipynb`` file name, else ``None``."""
    match = re.match(r"problem(\d+)_", Path(name).name)
    return int(match.group(1)) if match else None


def rerun_command(name: str, mode: str | None) -> str:
    """How to re-execute notebook ``name`` in ``mode``, commands in backquotes (both commands when the mode is
    unknown)."""
    n = problem_number(name)
    target = f" {n}" if n is not None else ""
    if n is None:
        return f"`python scripts/execute_notebook.py {name}`"
    if mode == "shipped":
        return f"`bash scripts/reproduce.sh --shipped{target}`"
    if mode == "full":
        return f"`bash scripts/reproduce.sh{target}`"
    return (f"`bash scripts/reproduce.sh --shipped{target}` (evaluating the shipped weights) or "
            f"`bash scripts/reproduce.sh{target}` (retraining)")


def _output_texts(output: Mapping[str, Any]) -> Iterable[str]:
    if output.get("output_type") == "stream":
        yield source_text({"source": output.get("text", "")})
    elif output.get("output_type") == "error":
        yield "\n".join(output.get("traceback", []))
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime == "application/json":
            yield value if isinstance(value, str) else "".join(value) if isinstance(value, list) \
                else json.dumps(value)


def _first_line(cell: Mapping[str, Any]) -> str:
    """The first line of a cell's code that is not a comment (``# NBVAL_IGNORE_OUTPUT`` names no cell), cut
    to 60 characters; the first line when every line is a comment; "" for an empty cell."""
    lines = [ln.strip() for ln in source_text(cell).splitlines() if ln.strip()]
    code = [ln for ln in lines if not ln.startswith("#")]
    return ((code or lines or [""])[0])[:60]


def check_notebook(nb: Mapping[str, Any], name: str, modes: Sequence[str] = MODES) -> list[str]:
    """What is wrong with notebook ``nb`` (parsed JSON; ``name`` names it in the messages) as one stamped
    execution by this runner, one message per problem; empty when nothing is.

    Checked: the notebook's ``metadata["hw5"]`` holds a mode from ``modes`` and non-empty device, torch and
    commit; every code cell is non-empty, carries ``metadata["hw5"]["source_sha256"]`` equal to the SHA-256 of
    its current source (so a cell edited after the execution fails) and has execution count k, k = 1..N over
    the code cells in order; no output contains a machine's absolute path (see ``MACHINE_PATH``), and every
    output line that shows a wall-clock time or a thread count says whose it is (see ``CLOCK_OWNER``). Each
    message names the notebook, the cell (position among all cells, and among code cells) and the command
    that re-executes it.
    """
    stamp = nb.get("metadata", {}).get("hw5")
    mode = stamp.get("mode") if isinstance(stamp, dict) else None
    fix = f"re-execute it with {rerun_command(name, mode if mode in COMMITTED_MODES else None)}"
    problems: list[str] = []
    if not isinstance(stamp, dict):
        problems.append(f"{name}: the notebook has no metadata['hw5'] stamp (mode, device, torch, commit): "
                        f"it was not written by scripts/execute_notebook.py; {fix}")
    else:
        for key in STAMP_KEYS:
            if not isinstance(stamp.get(key), str) or not stamp[key]:
                problems.append(f"{name}: metadata['hw5'] has no {key!r}; {fix}")
        if mode is not None and mode not in modes:
            problems.append(f"{name}: metadata['hw5']['mode'] is {mode!r}, expected one of {list(modes)}; {fix}")
    cells = nb.get("cells", [])
    code_total = sum(c.get("cell_type") == "code" for c in cells)
    k, unstamped = 0, []
    for index, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code":
            continue
        k += 1
        where = f"{name}: cell {index}/{len(cells)} (code cell {k}/{code_total}, {_first_line(cell)!r})"
        if not source_text(cell).strip():
            problems.append(f"{where} is an empty code cell; delete it, then {fix}")
            continue
        cell_stamp = cell.get("metadata", {}).get("hw5")
        if not isinstance(cell_stamp, dict) or "source_sha256" not in cell_stamp:
            unstamped.append(f"{where} has no source stamp (metadata['hw5']['source_sha256']): it was added or "
                             f"its metadata replaced after the notebook's execution; {fix}")
            problems.append(unstamped[-1])
        elif cell_stamp["source_sha256"] != source_sha256(cell):
            problems.append(f"{where}: its source was edited after the execution (its SHA-256 no longer matches "
                            f"the stamp), so its outputs are not this code's; {fix}")
        if cell.get("execution_count") != k:
            problems.append(f"{where} has execution count {cell.get('execution_count')}, expected {k}: the code "
                            f"cells were not executed once each, top to bottom, in one kernel; {fix}")
        for output in cell.get("outputs", []):
            for text in _output_texts(output):
                match = MACHINE_PATH.search(text)
                if match:
                    line = next(ln for ln in text.splitlines() if match.group(0) in ln)
                    problems.append(f"{where}: an output shows a machine path ({line.strip()[:100]!r}); print "
                                    f"paths relative to the repository, then {fix}")
                    break
                for line in text.splitlines():
                    if CLOCK_READING.search(line) and not CLOCK_OWNER.search(line):
                        problems.append(f"{where}: an output shows a wall-clock time or a thread count without "
                                        f"saying whose ({line.strip()[:100]!r}); mark it as this machine's (or, "
                                        f"read from a shipped history, as the shipped weights' training run's), "
                                        f"then {fix}")
                        break
    if code_total > 1 and len(unstamped) == code_total:  # one line, not one per cell, for an unstamped notebook
        problems = [p for p in problems if p not in unstamped]
        problems.insert(1 if not isinstance(stamp, dict) else 0,
                        f"{name}: none of its {code_total} code cells has a source stamp; {fix}")
    return problems


def check_files(paths: Sequence[str | Path], modes: Sequence[str] = MODES) -> list[str]:
    """:func:`check_notebook` of each notebook file (named by its path relative to the repository when it is
    inside it)."""
    problems = []
    for path in map(Path, paths):
        problems += check_notebook(json.loads(path.read_text(encoding="utf-8")), _display(path), modes)
    return problems


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------------------------
# Provenance of an execution: the kernel's view of mode, device and torch; the checkout's commit.

# Run with the kernel's interpreter and environment: what the notebook's `hw5.Settings.from_env()` will resolve.
_PROBE = r"""
import json, platform, torch
import hw5
s = hw5.Settings.from_env()
mode = "quick" if s.quick else "shipped" if s.use_shipped else "full"
d = s.device
if d.type == "cuda":
    name = f"cuda ({torch.cuda.get_device_name(d)})"
elif d.type == "cpu":
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()
    name = f"cpu ({cpu})" if cpu else "cpu"
else:
    name = str(d)
print(json.dumps({"mode": mode, "device": name, "torch": torch.__version__}))
"""


def kernel_python(kernel_name: str = "python3") -> str:
    """The interpreter that Jupyter starts for kernel ``kernel_name``: its kernel spec's first argument, where
    a bare ``python``/``python3`` means this interpreter (as ``jupyter_client`` launches it)."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv0 = KernelSpecManager().get_kernel_spec(kernel_name).argv[0]
    return sys.executable if argv0 in {"python", f"python{sys.version_info[0]}"} else argv0


def kernel_provenance(python: str, cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Mode, device and torch version as ``python`` (the kernel's interpreter) sees them in ``cwd`` with
    ``env``; a bad ``HW5_*`` value or a missing hw5/torch raises ``RuntimeError`` with the interpreter's error."""
    proc = subprocess.run([python, "-c", _PROBE], cwd=cwd, env=dict(os.environ if env is None else env),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"reading the mode and device with {python} failed before any cell ran:\n"
                           f"{proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def checkout_commit(root: Path = REPO_ROOT, outputs: Iterable[Path] = ()) -> str:
    """``git rev-parse HEAD`` of ``root``, with ``+dirty`` when a tracked file differs from it, apart from
    the notebooks (``notebooks/*.ipynb``: what the runner writes), ``figures/`` (what notebooks write) and
    ``outputs``; ``"unknown (not a git checkout)"`` outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                 "-z"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    skip = {str(Path(p).resolve()) for p in outputs}
    dirty, fields = [], iter(status.split("\0"))
    for entry in fields:  # "XY path"; a rename or copy ("R"/"C") is followed by its source path as its own field
        if len(entry) < 4:
            continue
        path = entry[3:]
        if entry[0] in "RC":
            next(fields, None)
        if (re.fullmatch(r"notebooks/[^/]+\.ipynb", path) or path.startswith("figures/")
                or str((root / path).resolve()) in skip):
            continue
        dirty.append(path)
    return head + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------------------------
# Execution.


def _duration(seconds: float) -> str:
    """12.3 s, 4 min 5 s, 2 h 3 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class _Terminal:
    """Writes to a text stream, remembering whether the last character was a line end, so that a status line
    never lands in the middle of a progress bar's line. :meth:`status` shows a progress state: on a terminal
    (a TTY) one line redrawn in place with a carriage return, cut to the terminal's width (a wrapped line could
    not be redrawn); elsewhere (a log file, a pipe) a line of its own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.at_line_start = stream, True
        self.status_width = 0  # > 0: the cursor is at the end of a redrawable status line (TTY only)
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def write(self, text: str) -> None:
        if text:
            if self.status_width and not text.startswith("\n"):
                text = "\n" + text  # keep the status line; what follows starts below it
            self.status_width = 0
            self.stream.write(text)
            self.stream.flush()
            self.at_line_start = text.endswith("\n")

    def line(self, text: str) -> None:
        self.write(("" if self.at_line_start else "\n") + text + "\n")

    def status(self, text: str) -> None:
        if not self.tty:
            self.line(text)
            return
        text = text[: max(20, shutil.get_terminal_size().columns - 1)]
        if self.status_width:
            self.stream.write("\r" + text.ljust(self.status_width))
        else:
            self.stream.write(("" if self.at_line_start else "\n") + text)
        self.stream.flush()
        self.status_width, self.at_line_start = len(text), False


class _ProgressTail:
    """Follows the side-channel file that the kernel's training writes its ``tqdm`` bars to (``HW5_PROGRESS``,
    :attr:`hw5.settings.Settings.progress`). A bar redraws itself as carriage return + its state, so the
    current state is the last non-blank piece of the text between carriage returns and line ends."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 -- read as it grows, closed by close()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""  # the text after the last carriage return or line end: maybe a state still arriving

    def latest(self) -> str | None:
        """The newest bar state in what was written since the last call, or ``None`` when nothing was."""
        new = self.decoder.decode(self.file.read())
        if not new:
            return None
        pieces = re.split(r"[\r\n]", self.pending + new)
        self.pending = pieces[-1]
        return next((piece.rstrip() for piece in reversed(pieces) if piece.strip()), None)

    def close(self) -> None:
        self.file.close()


def _client_class() -> type:
    """nbclient's ``NotebookClient`` with terminal reporting (imported here: checking needs no Jupyter)."""
    from nbclient import NotebookClient

    class ReportingClient(NotebookClient):
        """Forwards every stream output to the terminal as it arrives, and reports each code cell's start and
        elapsed time; the stored outputs are nbclient's."""

        def setup_reporting(self, label: str, terminal: _Terminal, heartbeat_s: float,
                            progress: _ProgressTail | None = None, progress_s: float = 10.0) -> None:
            self.label, self.terminal, self.started = label, terminal, time.perf_counter()
            self.cell_start = self.last_output = self.started
            self.heartbeat_s, self.heartbeat = heartbeat_s, None
            self.progress, self.progress_s, self.tail = progress, progress_s, None
            self.bar_state, self.bar_shown, self.bar_time = None, None, 0.0
            self.code_total = sum(c.cell_type == "code" for c in self.nb.cells)
            self.code_done = 0
            self.on_cell_execute, self.on_cell_executed = self._cell_execute, self._cell_executed
            self.on_cell_error = self._cell_error

        def _where(self, cell_index: int) -> str:
            return (f"[{self.label}] cell {cell_index + 1}/{len(self.nb.cells)} "
                    f"(code {self.code_done + 1}/{self.code_total})")

        def _cell_execute(self, cell: Any, cell_index: int) -> None:
            self.cell_start = self.last_output = time.perf_counter()
            self.terminal.line(f"{self._where(cell_index)} running: {_first_line(cell)}")
            self.heartbeat = asyncio.ensure_future(self._beat(cell_index))  # hooks run inside nbclient's loop
            if self.progress is not None:
                self.tail = asyncio.ensure_future(self._follow(cell_index))

        def _show_bar(self, cell_index: int, force: bool = False) -> None:
            """Read the side channel; show its newest state if it is new and ``progress_s`` have passed since
            the last one shown (``force``: whenever it is new; a cell's final state)."""
            state = self.progress.latest()
            self.bar_state = state if state is not None else self.bar_state
            now = time.perf_counter()
            if self.bar_state != self.bar_shown and (force or now - self.bar_time >= self.progress_s):
                self.terminal.status(f"[{self.label} cell {cell_index + 1}] {self.bar_state}")
                self.bar_shown, self.bar_time = self.bar_state, now
                self.last_output = now

        async def _follow(self, cell_index: int) -> None:
            """While the cell runs, the training's progress from the side channel (read every 0.5 s)."""
            while True:
                await asyncio.sleep(0.5)
                self._show_bar(cell_index)

        async def _beat(self, cell_index: int) -> None:
            """While the cell runs, a line after every ``heartbeat_s`` seconds without output from it (a
            training that shows no progress bar would otherwise look like a hung run)."""
            while True:
                await asyncio.sleep(self.heartbeat_s)
                now = time.perf_counter()
                if now - self.last_output >= self.heartbeat_s:
                    self.terminal.line(f"{self._where(cell_index)} still running: "
                                       f"{_duration(now - self.cell_start)} so far")
                    self.last_output = now

        def stop_heartbeat(self) -> None:
            for task in (self.heartbeat, self.tail):
                if task is not None:
                    task.cancel()
            self.heartbeat = self.tail = None

        def _cell_executed(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
            self.stop_heartbeat()
            if self.progress is not None:
                self._show_bar(cell_index, force=True)  # the bar's final state, written before the cell ended
            now = time.perf_counter()
            status = execute_reply.get("content", {}).get("status", "ok") if execute_reply else "ok"
            verb = "done" if status == "ok" else "FAILED"
            self.terminal.line(f"{self._where(cell_index)} {verb} in {_duration(now - self.cell_start)} "
                               f"(notebook so far: {_duration(now - self.started)})")
            self.code_done += 1

        def _cell_error(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
            pass  # reported by _cell_executed (status "error") and by the CellExecutionError that follows

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            if msg["msg_type"] == "stream":
                self.terminal.write(msg["content"].get("text", ""))
                self.last_output = time.perf_counter()
            return super().output(outs, msg, display_id, cell_index)

    return ReportingClient


def execute_notebook(path: str | Path, output: str | Path | None = None, *, commit: str | None = None,
                     stream: TextIO | None = None, env: Mapping[str, str] | None = None,
                     kernel_name: str = "python3", heartbeat_s: float = 60.0,
                     progress_s: float | None = None) -> dict[str, str]:
    """Execute notebook ``path`` top to bottom in a fresh ``kernel_name`` kernel, its folder as working
    directory, reporting on ``stream`` (default: stdout; a running cell that printed nothing for
    ``heartbeat_s`` seconds gets a "still running" line); stamp it (:func:`stamp_notebook`) and write it
    atomically to ``output`` (default: in place). ``commit`` defaults to :func:`checkout_commit`. ``env``: the
    kernel's environment (default: this process's), with ``HW5_PROGRESS`` set to a temporary file (removed
    at the end) whose newest progress-bar state is shown at most every ``progress_s`` seconds (default: 1 s,
    redrawn in place, on a terminal; 10 s, a line each, elsewhere) and at the end of each cell. Returns the
    notebook's stamp. A failing cell raises nbclient's ``CellExecutionError`` and nothing is written."""
    import nbformat

    path = Path(path).resolve()
    output = path if output is None else Path(output).resolve()
    terminal = _Terminal(stream or sys.stdout)
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "code" and not cell.source.strip():
            raise ValueError(f"{path.name}: cell {index} is an empty code cell; delete it (an empty cell is not "
                             "executed, so it would break the execution counts 1..N)")
        if cell.cell_type == "code":  # a cell that does not run must not keep an older execution's outputs
            cell.outputs, cell.execution_count = [], None
    fd, progress_path = tempfile.mkstemp(prefix="hw5-progress-", suffix=".txt")
    os.close(fd)
    if progress_s is None:
        progress_s = 1.0 if terminal.tty else 10.0
    try:
        return _execute(nb, path, output, commit, terminal, env, kernel_name, heartbeat_s, Path(progress_path),
                        progress_s)
    finally:
        Path(progress_path).unlink(missing_ok=True)


def _execute(nb: Any, path: Path, output: Path, commit: str | None, terminal: _Terminal,
             env: Mapping[str, str] | None, kernel_name: str, heartbeat_s: float, progress_path: Path,
             progress_s: float) -> dict[str, str]:
    """:func:`execute_notebook` once its notebook is read and its progress file made."""
    import nbformat

    # the kernel's training writes its bars to this file (hw5.Settings.progress), never to the notebook
    env = {**(os.environ if env is None else env), "HW5_PROGRESS": str(progress_path)}
    stamp = {**kernel_provenance(kernel_python(kernel_name), path.parent, env),
             "commit": commit if commit is not None else checkout_commit(outputs=[path, output])}
    terminal.line(f"[{path.name}] mode {stamp['mode']}, device {stamp['device']}, torch {stamp['torch']}, "
                  f"commit {stamp['commit']}; starting a kernel")
    client = _client_class()(nb, timeout=None, kernel_name=kernel_name, record_timing=False,
                             coalesce_streams=True, resources={"metadata": {"path": str(path.parent)}})
    tail = _ProgressTail(progress_path)
    client.setup_reporting(path.name, terminal, heartbeat_s, tail, progress_s)
    try:
        client.execute(env=env)
    finally:
        client.stop_heartbeat()
        tail.close()
    stamp_notebook(nb, stamp)
    text = nbformat.writes(nb) + "\n"  # the committed notebooks' format (nbformat's JSON, one trailing line end)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - client.started
    terminal.line(f"[{path.name}] executed in {_duration(elapsed)} (this machine's time); written to "
                  f"{_display(output)}")
    return stamp


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", help="notebook files, executed in the order given")
    parser.add_argument("--output-dir", help="write the executed copies here instead of in place")
    parser.add_argument("--check", action="store_true", help="execute nothing: check the notebooks' stamps")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"execute_notebook.py: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.check:
        problems = check_files(paths)
        print("\n".join(problems) if problems else f"{len(paths)} notebook(s): every stamp matches")
        return 1 if problems else 0
    out_dir = Path(args.output_dir) if args.output_dir else None
    outputs = [out_dir / p.name if out_dir else p for p in paths]
    commit = checkout_commit(outputs=[*paths, *outputs])  # once, before any notebook rewrites anything
    start, failed = time.perf_counter(), []
    for path, output in zip(paths, outputs):
        try:
            execute_notebook(path, output, commit=commit)
        except Exception as exc:  # noqa: BLE001 -- report, then run the next notebook
            print(f"\n[{path.name}] FAILED, not written: {exc}", file=sys.stderr, flush=True)
            failed.append(path.name)
    print(f"all {len(paths)} notebook(s) in {_duration(time.perf_counter() - start)} (this machine's time)"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
