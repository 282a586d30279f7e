"""The house's structure, checked from the code's own imports: data flows one way (data -> models -> metrics ->
training -> reports), no import goes back up a layer, and no module imports itself through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hw5

PACKAGE = Path(hw5.__file__).resolve().parent

# A module may import modules of its own layer or of a lower one (a lower number), never of a higher one.
LAYERS = {
    "hw5.checks": 0, "hw5.files": 0, "hw5.utils": 0, "hw5.locations": 0,
    "hw5.data": 1, "hw5.checkpoint": 1,
    "hw5.models": 2, "hw5.configs": 2,
    "hw5.metrics": 3,
    "hw5.training": 4,
    "hw5.reports": 5, "hw5.plotting": 5,
    "hw5.pretrained": 6, "hw5.output": 6, "hw5.settings": 6,
    "hw5": 7,
}
# Stricter rules than the layers, by package: what each may import of hw5.
ONLY = {
    # pure maths: no data loading, no file I/O, no plotting (hw5.utils: devices and arithmetic modes, no I/O)
    "hw5.models": {"hw5.checks", "hw5.utils", "hw5.models"},
    "hw5.plotting": {"hw5.plotting"},  # drawing only: figures of arrays it is given
}
NEVER = {
    "hw5.metrics": {"hw5.pretrained", "hw5.output", "hw5.files", "hw5.settings", "hw5.training", "hw5.reports"},
    "hw5.reports": {"hw5.pretrained", "hw5.output", "hw5.files", "hw5.settings"},  # presentation: no I/O
}


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The hw5 modules that ``path`` imports (relative imports resolved; ``from a import b`` counts as ``a.b``
    when ``a.b`` is a module, else as ``a``)."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m == "hw5" or m.startswith("hw5.")}


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {_name(path) for path in FILES}
GRAPH = {_name(path): _imports(path) - {_name(path)} for path in FILES}


def _owner(module: str, table: dict) -> str | None:
    """The longest key of ``table`` that is ``module`` or a package above it."""
    keys = [k for k in table if module == k or module.startswith(k + ".")]
    return max(keys, key=len) if keys else None


def test_every_module_has_a_layer():
    assert all(_owner(m, LAYERS) for m in MODULES), sorted(m for m in MODULES if not _owner(m, LAYERS))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers_and_keep_each_package_rule(module):
    layer = LAYERS[_owner(module, LAYERS)]
    up = sorted(i for i in GRAPH[module] if LAYERS[_owner(i, LAYERS)] > layer)
    assert not up, f"{module} (layer {layer}) imports {up}, a higher layer"
    for rules, allowed in ((ONLY, True), (NEVER, False)):
        package = _owner(module, rules)
        if package is None:
            continue
        bad = sorted(i for i in GRAPH[module] if (_owner(i, {k: 0 for k in rules[package]}) is None) == allowed)
        assert not bad, f"{module} must {'import only' if allowed else 'not import'} {sorted(rules[package])}: {bad}"


def test_no_module_imports_itself_through_others():
    """No circle in the import graph (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_no_module_is_over_400_lines():
    long = {_name(p): n for p in FILES if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
