"""README.md documents every key a study file may hold: the keys are read from the study
file loader's own errors ("unknown key ...; known keys: [...]"), so a key added to the
loader without a line in the README's table fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import loads_study

README = Path(__file__).resolve().parents[2] / "README.md"
HEAD = "name: x\nmetric: {name: m, goal: maximize}\n"
CASES = {
    "top level": HEAD + "bogus: 1\n",
    "budget": HEAD + "budget: {bogus: 1}\n",
    "early_stopping": HEAD + "early_stopping: {bogus: 1}\n",
    "fidelity": HEAD + "algorithm: hyperband\nfidelity: {bogus: 1}\n",
    **{
        f"{kind} parameter": HEAD + f"parameters: {{p: {{type: {kind}, bogus: 1}}}}\n"
        for kind in ("double", "integer", "categorical", "discrete", "boolean", "fixed")
    },
}


def _known(text: str) -> list[str]:
    with pytest.raises(InvalidArgumentError) as caught:
        loads_study(text)
    listed = re.search(r"(?:known keys|known|allowed): (\[.*?\])", str(caught.value))
    assert listed, str(caught.value)
    return [str(key) for key in ast.literal_eval(listed.group(1))]


def _table() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("Every key, with its default")
    return text[start : text.index("\n## ", start)]


@pytest.mark.parametrize("where", sorted(CASES))
def test_every_key_the_loader_knows_has_a_row_in_the_readme(where: str) -> None:
    table = _table()
    keys = _known(CASES[where])
    assert keys
    missing = [key for key in keys if f"`{key}`" not in table]
    assert missing == [], f"README.md's study-file table lacks {where} keys {missing}"


def test_the_nested_keys_without_their_own_error_are_in_the_readme_too() -> None:
    table = _table()
    for key in ("goal", "study"):  # metric: {name, goal}; warm_start: {study}
        assert re.search(rf"\b{key}\b", table), key
