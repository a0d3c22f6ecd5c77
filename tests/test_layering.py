"""The layers of the whole package, read from its import statements (see docs/design.md).

Arrows point one way: the client and the worker (which run on GPU boxes) reach the chief
only through the wire; the store knows no oracle and no gRPC; search is pure; no module
imports another that imports it back.  Imports under ``if TYPE_CHECKING:`` (they never run) and
``if __name__ == "__main__":`` (a script's entry point, not a dependency of the module) do
not count; imports inside functions do.  The root package's lazy ``hpsearch.Client`` runs
only when that attribute is read, so importing ``hpsearch.x`` does not reach it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpsearch

PACKAGE = Path(hpsearch.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(p): p
    for p in sorted(PACKAGE.rglob("*.py"))
    if "protos" not in p.parts and "migrations" not in p.parts
}


def _imports(path: Path) -> Iterator[str]:
    """The hpsearch modules ``path`` imports (a name imported from a package that is a
    module of its own counts as that module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            "TYPE_CHECKING" in ast.unparse(node.test) or "__main__" in ast.unparse(node.test)
        ):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hpsearch"):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("hpsearch"):
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module


GRAPH = {name: set(_imports(path)) - {name} for name, path in MODULES.items()}


def _within(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def _reached(start: str) -> set[str]:
    """Every hpsearch module ``start`` imports, directly or not (package inits included:
    importing ``hpsearch.b.c`` runs ``hpsearch.b``; the root package is left out, see the
    module docstring)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for name in [".".join(parts[:i]) for i in range(2, len(parts) + 1)]:
            if name in MODULES and name not in seen:
                seen.add(name)
                todo.extend(GRAPH[name])
    return seen


#: What each lower layer may never import, directly or not.
FORBIDDEN = {
    "hpsearch.client": (
        "hpsearch.service",
        "hpsearch.oracle",
        "hpsearch.store",
        "hpsearch.search",
    ),
    "hpsearch.worker": (
        "hpsearch.service",
        "hpsearch.oracle",
        "hpsearch.store",
        "hpsearch.search",
    ),
    "hpsearch.wire": ("hpsearch.service", "hpsearch.oracle", "hpsearch.store", "hpsearch.search"),
    "hpsearch.store": ("hpsearch.oracle", "hpsearch.service", "hpsearch.search", "hpsearch.cli"),
    "hpsearch.search": ("hpsearch.store", "hpsearch.oracle", "hpsearch.service", "hpsearch.cli"),
    "hpsearch.oracle": ("hpsearch.service", "hpsearch.cli", "hpsearch.dashboard"),
    "hpsearch.service": ("hpsearch.cli", "hpsearch.dashboard"),
    "hpsearch.dashboard": ("hpsearch.oracle", "hpsearch.service", "hpsearch.cli"),
    # Imports write through the store, like hpsearch.vertex: no chief needed.
    "hpsearch.importers": (
        "hpsearch.oracle",
        "hpsearch.service",
        "hpsearch.cli",
        "hpsearch.dashboard",
    ),
    "hpsearch.tensorboard": (
        "hpsearch.oracle",
        "hpsearch.service",
        "hpsearch.cli",
        "hpsearch.dashboard",
    ),
    "hpsearch.space": ("hpsearch.records", "hpsearch.store", "hpsearch.search", "hpsearch.wire"),
}


def test_the_graph_covers_every_layer() -> None:
    for layer in (*FORBIDDEN, "hpsearch.cli", "hpsearch.vertex", "hpsearch.records"):
        assert any(_within(m, layer) for m in MODULES), layer


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_reaches_the_layers_above_it(layer: str) -> None:
    for module in (m for m in MODULES if _within(m, layer)):
        bad = sorted(m for m in _reached(module) if _within(m, *FORBIDDEN[layer]))
        assert not bad, f"{module} imports (directly or not) {bad}"


def test_nothing_below_the_cli_imports_the_cli() -> None:
    for module, imported in GRAPH.items():
        if not _within(module, "hpsearch.cli") and module != "hpsearch.__main__":
            assert not any(_within(m, "hpsearch.cli") for m in imported), module


def test_no_two_modules_import_each_other() -> None:
    pairs = sorted(
        (a, b)
        for a, imported in GRAPH.items()
        for b in imported
        if a < b and a in GRAPH.get(b, set())
    )
    assert pairs == []


def test_importing_the_client_loads_neither_the_chief_nor_the_numeric_stack() -> None:
    """Measured, not read: a worker on a GPU box pays for gRPC and the protos only."""
    probe = (
        "import sys, hpsearch.client, hpsearch.worker.loop\n"
        "heavy = ('sqlalchemy', 'numpy', 'scipy', 'hpsearch.oracle', 'hpsearch.store',"
        " 'hpsearch.search', 'hpsearch.service')\n"
        "print(sorted({m.split('.')[0] if not m.startswith('hpsearch') else m"
        " for m in sys.modules if m.startswith(heavy)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
