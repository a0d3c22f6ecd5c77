"""Under CI=true a skipped test fails (tests/conftest.py), so a service or tool missing in
CI cannot pass quietly; outside CI, or with ``ci_may_skip``, it stays a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("chromium not found")

@pytest.mark.skipif(True, reason="TensorFlow is not installed")
def test_needs_tensorflow():
    pass

@pytest.mark.ci_may_skip("only on some platforms")
def test_may_skip():
    pytest.skip("not on this platform")

@pytest.mark.xfail(reason="a known bug")
def test_known_bug():
    assert False

def test_runs():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    ci_may_skip(reason): may skip under CI\n")
    pytester.makepyfile(test_inner=SKIPPING)
    return pytester


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_skip_fails_and_names_what_is_missing(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, failed=1, errors=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*skipped under CI=true: chromium not found*",
            "*skipped under CI=true: TensorFlow is not installed*",
        ]
    )
    assert result.ret != 0


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_a_skip_is_a_skip(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == 0


def test_a_test_using_postgres_is_marked_postgres_without_saying_so(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    suite.makepyfile(test_pg="def test_pg(postgres_url):\n    pass\n")
    result = suite.runpytest("-p", "no:cacheprovider", "-m", "not postgres", "test_pg.py")
    result.assert_outcomes(deselected=1)
