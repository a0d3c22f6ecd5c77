"""The database fails under a running study: PostgreSQL restarted in the middle of writes,
an SQLite file whose disk fills up or turns read-only.  Callers get a clear error (the
Python client retries it), nothing committed is lost, and the chief goes on once the
database is back.  Each test ends by reading the trials table from SQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpsearch.records import AttemptState, TrialState
from hpsearch.store import Store

from . import faultkit
from .conftest import free_port, study_yaml

pytestmark = pytest.mark.slow


@pytest.fixture
def private_postgres() -> Iterator[faultkit.PrivatePostgres]:
    """A PostgreSQL server of this test's own (restarting the shared one would cut other
    tests' connections)."""
    try:
        server = faultkit.PrivatePostgres(free_port())
    except (RuntimeError, OSError) as error:
        pytest.skip(f"no private PostgreSQL server: {error}")
    try:
        server.start()
        yield server
    finally:
        server.close()


def _check_study(url: str, study: str, trials: int, told: list[tuple[int, int, float]]) -> None:
    """Every trial COMPLETED once, with the value its worker was told was stored."""
    with Store(url) as store:
        stored = store.list_trials(study)
        assert [(t.number, t.state) for t in stored] == [
            (n, TrialState.COMPLETED) for n in range(trials)
        ]
        by_number = {number: (attempt, value) for number, attempt, value in told}
        assert len(by_number) == len(told), f"a trial was told twice: {told}"
        assert {t.number: (t.attempt, t.value) for t in stored} == by_number
        for trial in stored:
            attempts = store.list_attempts(study, trial.number)
            assert [a.state for a in attempts][-1] is AttemptState.COMPLETED


def test_postgres_restarted_in_the_middle_of_a_study(
    private_postgres: faultkit.PrivatePostgres, tmp_path: Path
) -> None:
    study_file = tmp_path / "pgrestart.yaml"
    study_file.write_text(
        study_yaml("pgrestart", budget="{max_trials: 30, parallel_trials: 6}", lease_seconds=20)
    )
    chief = faultkit.Chief(
        private_postgres.url,
        free_port(),
        tmp_path / "chief.log",
        "--study",
        str(study_file),
        "--chief-lease-seconds",
        "10",
    )
    chief.start()
    try:
        workers = faultkit.Workers(chief.address, "pgrestart", 6, work_seconds=0.1).start()
        for progress in (5, 15):
            workers.wait_told(progress, 60)
            private_postgres.restart()  # a fast shutdown: sessions ended mid-transaction
        workers.join(120)
        assert chief.proc is not None and chief.proc.poll() is None, chief.tail()
        _check_study(private_postgres.url, "pgrestart", 30, workers.told)
        # The chief answered UNAVAILABLE during the restarts; the client retried it.
        assert workers.errors == []
    finally:
        chief.kill()
