"""The space layer sits at the bottom: it imports no other hpsearch layer but hpsearch.errors."""

from __future__ import annotations

import ast
from pathlib import Path

import hpsearch.space

ALLOWED = ("hpsearch.errors", "hpsearch.space")
HEAVY = ("keras_tuner", "tensorflow", "keras", "google", "sqlalchemy", "grpc")


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_space_imports_only_errors_from_hpsearch_and_nothing_heavy() -> None:
    package = Path(hpsearch.space.__file__).parent
    files = sorted(package.glob("*.py"))
    assert {f.name for f in files} >= {"params.py", "study.py", "keras_tuner.py", "vertex.py"}
    for path in files:
        for module in imported_modules(path):
            if module.startswith("hpsearch"):
                assert module.startswith(ALLOWED), f"{path.name} imports {module}"
            assert module.split(".")[0] not in HEAVY, f"{path.name} imports {module}"
