"""The database fails under a running study: PostgreSQL restarted in the middle of writes,
an SQLite file whose disk fills up or turns read-only.  Callers get a clear error (the
Python client retries it), nothing committed is lost, and the chief goes on once the
database is back.  Each test ends by reading the trials table from SQL."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpsearch.client import Client
from hpsearch.errors import StorageError
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
        workers.wait_told(20, 60)
        private_postgres.stop()  # and down for longer than a few lease sweeps (1 s apart)
        time.sleep(3.0)
        private_postgres.start()
        workers.join(120)
        assert chief.proc is not None and chief.proc.poll() is None, chief.tail()
        _check_study(private_postgres.url, "pgrestart", 30, workers.told)
        # The chief answered UNAVAILABLE during the restarts; the client retried it.
        assert workers.errors == []
        # An outage is one warning line per skipped sweep, not a 100-line traceback.
        log = (tmp_path / "chief.log").read_text(errors="replace")
        assert "lease sweep skipped for now: cannot reach the database" in log, chief.tail(40)
        assert "Traceback" not in log, chief.tail(40)
    finally:
        chief.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[faultkit.SmallDisk]:
    """A 16 MiB tmpfs for an SQLite file (root only)."""
    try:
        disk = faultkit.SmallDisk(tmp_path / "disk")
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs: {error}")
    try:
        yield disk
    finally:
        disk.close()


def test_sqlite_on_a_full_disk(small_disk: faultkit.SmallDisk, tmp_path: Path) -> None:
    """Writes are refused with UNAVAILABLE saying what to do (the client retries it);
    once space returns the study goes on, every result stored once."""
    url = f"sqlite:///{small_disk.directory / 'hpsearch.db'}"
    study_file = tmp_path / "disk.yaml"
    study_file.write_text(study_yaml("disk", budget="{max_trials: 20, parallel_trials: 8}"))
    chief = faultkit.Chief(url, free_port(), tmp_path / "chief.log", "--study", str(study_file))
    chief.start()
    try:
        workers = faultkit.Workers(chief.address, "disk", 4, work_seconds=0.1).start()
        workers.wait_told(5, 60)
        small_disk.fill()
        with Client(chief.address, timeout=5.0, retry_seconds=0) as c:
            time.sleep(1.0)  # the workers' calls in flight meet the full disk
            with pytest.raises(StorageError, match=r"disk is full; free space on the disk"):
                c.ask("disk", "probe", timeout=5)
        time.sleep(2.0)
        small_disk.free()
        workers.join(120)
        assert chief.proc is not None and chief.proc.poll() is None, chief.tail()
        _check_study(url, "disk", 20, workers.told)
        assert workers.errors == []  # retried until there was room
    finally:
        chief.kill()


def test_sqlite_read_only_then_writable_again(
    small_disk: faultkit.SmallDisk, tmp_path: Path
) -> None:
    """A chief restarted on a read-only database exits with a clear error and keeps
    nothing half-done; restarted once it is writable again, it serves the study on."""
    url = f"sqlite:///{small_disk.directory / 'hpsearch.db'}"
    study_file = tmp_path / "ro.yaml"
    study_file.write_text(study_yaml("ro", budget="{max_trials: 12, parallel_trials: 4}"))
    args = ("--study", str(study_file), "--chief-lease-seconds", "2")
    chief = faultkit.Chief(url, free_port(), tmp_path / "chief.log", *args)
    chief.start()
    try:
        workers = faultkit.Workers(chief.address, "ro", 3, work_seconds=0.1).start()
        workers.wait_told(4, 60)
        chief.kill()  # remounting read-only needs the files closed: a crash closes them
        small_disk.read_only()
        assert chief.spawn().wait(60) == 2
        assert re.search(
            r"readonly database.*check that the path exists and is writable", chief.tail()
        ), chief.tail()
        small_disk.writable()
        chief.start()  # waits out the killed chief's 2 s lease first
        workers.join(120)
        _check_study(url, "ro", 12, workers.told)
        assert workers.errors == []  # the client retried while no chief served
    finally:
        chief.kill()
