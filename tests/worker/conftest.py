"""Fixtures for the worker's tests: an in-process chief over per-test storage."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hpsearch.client import Client

FAKE_TRIAL = [sys.executable, str(Path(__file__).with_name("fake_trial.py"))]


@pytest.fixture
def chief_storage(sqlite_url: str) -> str:
    """SQLite: the worker never touches the store; the chief's tests cover both back ends."""
    return sqlite_url


def make_study(
    client: Client,
    name: str,
    *,
    max_trials: int = 3,
    parallel: int = 1,
    lease_seconds: float = 30,
    measurement: str = "best",
    early_stopping: str = "none",
    max_attempts: int = 3,
) -> str:
    client.create_study(
        textwrap.dedent(f"""\
        name: {name}
        metric: {{name: score, goal: maximize}}
        parameters:
          x: {{type: double, min: 0.0, max: 1.0}}
        budget: {{max_trials: {max_trials}, parallel_trials: {parallel},
                  max_attempts: {max_attempts}}}
        algorithm: random
        measurement: {measurement}
        lease_seconds: {lease_seconds}
        early_stopping: {early_stopping}
        """)
    )
    return name
