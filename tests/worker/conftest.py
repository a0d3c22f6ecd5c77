"""Fixtures for the worker's tests: an in-process chief over per-test storage."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client

FAKE_TRIAL = [sys.executable, str(Path(__file__).with_name("fake_trial.py"))]


@pytest.fixture
def worker_storage(sqlite_url: str) -> str:
    """SQLite: the worker never touches the store; the chief's tests cover both back ends."""
    return sqlite_url


@pytest.fixture
def chief(worker_storage: str) -> Iterator[Chief]:
    server = Chief(worker_storage, host="127.0.0.1", port=0, hold_seconds=1.0, sweep_seconds=0.2)
    server.start()
    try:
        yield server
    finally:
        server.stop(0)


@pytest.fixture
def client(chief: Chief) -> Iterator[Client]:
    with Client(chief.address, timeout=5.0, wait_seconds=1.0, retry_seconds=10.0) as c:
        yield c


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
