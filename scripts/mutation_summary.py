"""Per-module summary of a mutmut run (scripts/mutation.sh): killed / survived / timeout / equivalent / no tests.

Reads mutmut's result files ``mutants/<module path>.meta`` (``exit_code_by_key``: mutant name -> the exit code
of the tests run against it) and the equivalents list ``tests/mutation_equivalents.txt`` (one
``<mutant name>  <why it is equivalent>`` a line, ``#`` comments). A listed survivor counts as equivalent;
the score of a module is (killed + timeout) / (all - equivalent). Exits 1 when an unlisted mutant survived or was
never tested, or when a listed name is no longer a surviving mutant (a stale entry), so the list stays exact.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# mutmut 3's exit-code meanings (mutmut.stats.status_by_exit_code)
KILLED, SURVIVED, TIMEOUT, NO_TESTS = {1, 3}, {0}, {24, -24, 36, 152, 255}, {5, 33}


def read_equivalents(path: Path) -> dict[str, str]:
    """The listed equivalent mutants: name -> reason; a line without a reason is an error."""
    listed: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{path}:{number}: {name} has no reason; write '<mutant name>  <why it is equivalent>'")
        listed[name] = reason.strip()
    return listed


def status(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in TIMEOUT:
        return "timeout"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else f"other ({code})"


def main(root: Path) -> int:
    equivalents = read_equivalents(root / "tests" / "mutation_equivalents.txt")
    metas = sorted((root / "mutants").rglob("*.py.meta"))
    if not metas:
        sys.exit("no mutmut results under mutants/; run scripts/mutation.sh first")
    rows, problems, seen = [], [], set()
    total: Counter[str] = Counter()
    for meta in metas:
        module = str(meta.relative_to(root / "mutants"))[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts: Counter[str] = Counter()
        for name, code in codes.items():
            s = status(code)
            if s == "survived" and name in equivalents:
                s = "equivalent"
                seen.add(name)
            elif s not in ("killed", "timeout"):
                problems.append(f"{s}: {name}")
            counts[s] += 1
        total.update(counts)
        rows.append((module, counts))
    rows.append(("all", total))
    header = f"{'module':32} {'mutants':>7} {'killed':>6} {'timeout':>7} {'equiv.':>6} {'survived':>8} {'other':>5} {'score':>6}"
    print(header)
    for module, c in rows:
        n = sum(c.values())
        other = n - c["killed"] - c["timeout"] - c["equivalent"] - c["survived"]
        denominator = n - c["equivalent"]
        score = 100.0 * (c["killed"] + c["timeout"]) / denominator if denominator else 100.0
        print(f"{module:32} {n:7d} {c['killed']:6d} {c['timeout']:7d} {c['equivalent']:6d} {c['survived']:8d} "
              f"{other:5d} {score:5.1f}%")
    stale = sorted(set(equivalents) - seen)
    for name in stale:
        problems.append(f"listed as equivalent but not a surviving mutant (remove it): {name}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s): mutants neither killed nor listed in tests/mutation_equivalents.txt, "
              "or listed ones that no longer survive")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent))
