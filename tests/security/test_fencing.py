"""Two chiefs never serve one store at once: the fencing lease in the store and the chief."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import FailedPreconditionError, HpsearchError, StorageError
from hpsearch.records import Trial, TrialState
from hpsearch.space import Goal, Metric, StudyConfig
from hpsearch.store import Store
from hpsearch.store.fencing import (
    FENCE_LOCK_CLASS,
    ChiefLease,
    ChiefLeaseHeldError,
    ChiefLeaseLostError,
)

from .conftest import study_text

REPO = Path(__file__).resolve().parents[2]
StartChief = Callable[..., Chief]


def test_store_lease_is_exclusive_until_released_or_expired(store: Store) -> None:
    assert store.chief_lease() is None
    first = store.acquire_chief_lease("chief-a", 30)
    assert first.epoch == 1
    assert first.expires_at > store.db_now() + 25  # on the database clock
    with pytest.raises(ChiefLeaseHeldError, match=r"chief-a, epoch 1\).* expires at .* UTC"):
        store.acquire_chief_lease("chief-b", 30)
    renewed = store.renew_chief_lease(first, 30)
    assert renewed.epoch == 1 and renewed.expires_at >= first.expires_at
    assert store.release_chief_lease(renewed)
    second = store.acquire_chief_lease("chief-b", 0.3)
    assert second.epoch == 2
    time.sleep(0.5)  # b's lease lapses without renewal: c may take it
    third = store.acquire_chief_lease("chief-c", 30)
    assert third.epoch == 3
    with pytest.raises(ChiefLeaseLostError, match="chief-c \\(epoch 3\\)"):
        store.renew_chief_lease(second, 30)


def test_takeover_fences_the_holder(store: Store) -> None:
    first = store.acquire_chief_lease("chief-a", 30)
    taken = store.acquire_chief_lease("chief-b", 30, takeover=True)
    assert taken.epoch == first.epoch + 1
    with pytest.raises(ChiefLeaseLostError, match=r"lost its lease .* chief-b"):
        store.renew_chief_lease(first, 30)
    assert not store.release_chief_lease(first)  # releasing a lost lease changes nothing
    lease = store.chief_lease()
    assert lease is not None and lease.holder == "chief-b"


def _fence_locks(store: Store, granted: bool) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = :class AND granted = :granted"
                ),
                {"class": FENCE_LOCK_CLASS, "granted": granted},
            ).scalar_one()
        )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.postgres
def test_a_takeover_waits_for_the_fenced_writes_in_flight(postgres_url: str) -> None:
    """PostgreSQL: a fenced write that began before a takeover commits before it; once the
    takeover has committed, the fenced store's next write is refused (nothing in between).
    (SQLite runs whole write transactions one at a time under its database lock.)"""
    with Store(postgres_url) as store:
        _takeover_waits(store)


def _takeover_waits(store: Store) -> None:
    config = StudyConfig(name="fenced", metric=Metric("score", Goal.MAXIMIZE))
    name = store.create_study(config).name
    lease = store.acquire_chief_lease("chief-a", 60)
    store.fence_writes(lease)
    trial = store.create_trial(name, {"x": 1}, worker_id="w")
    outcome: dict[str, object] = {}
    with Store(store.url) as other, store.engine.connect() as blocker:
        # Hold the trial's row so that the fenced completion stops inside its transaction,
        # after the fence's check.
        blocker.execute(text("SELECT id FROM trials FOR UPDATE"))

        def complete() -> None:
            outcome["completed"] = store.complete_trial(name, trial.number, trial.attempt, 0.5)

        def take_over() -> None:
            outcome["taken"] = other.acquire_chief_lease("chief-b", 60, takeover=True)

        writer = threading.Thread(target=complete)
        writer.start()
        _wait_for(lambda: _fence_locks(store, granted=True) == 1, "the fenced write's lock")
        taker = threading.Thread(target=take_over)
        taker.start()
        _wait_for(
            lambda: _fence_locks(store, granted=False) == 1 or not taker.is_alive(),
            "the takeover to queue",
        )
        time.sleep(0.3)
        assert taker.is_alive(), "the takeover did not wait for the write in flight"
        blocker.rollback()  # let the write finish
        writer.join(10)
        taker.join(10)
    completed = outcome["completed"]
    assert isinstance(completed, Trial) and completed.state is TrialState.COMPLETED
    taken = outcome["taken"]
    assert isinstance(taken, ChiefLease) and taken.epoch == lease.epoch + 1
    with pytest.raises(ChiefLeaseLostError, match="chief-b"):
        store.create_trial(name, {"x": 2}, worker_id="w")
    assert [t.number for t in store.list_trials(name)] == [trial.number]


def test_second_chief_refuses_and_takeover_stops_the_first(start_chief: StartChief) -> None:
    first = start_chief(chief_lease_seconds=1.5)
    with pytest.raises(ChiefLeaseHeldError, match=f"{first.holder}.* --takeover"):
        start_chief(chief_lease_seconds=1.5)
    with Client(first.address, retry_seconds=0) as client:
        assert client.list_studies() == []  # the refused chief did not disturb the first
    second = start_chief(chief_lease_seconds=1.5, takeover=True)
    assert first.done.wait(5), "the fenced chief kept serving"
    assert isinstance(first.lost_lease, ChiefLeaseLostError)
    with Client(first.address, retry_seconds=0, timeout=2) as stale, pytest.raises(StorageError):
        stale.list_studies()
    with Client(second.address, retry_seconds=0) as client:
        assert client.list_studies() == []
    time.sleep(1.0)  # a couple of renewals: the new chief keeps its lease
    assert not second.done.is_set()


FENCED_STUDY = study_text("fenced", max_trials=10, parallel_trials=4)


def test_a_fenced_chief_writes_nothing_before_its_renewal_notices(
    start_chief: StartChief, storage_url: str
) -> None:
    """A 60 s chief lease is renewed every 20 s; the fenced chief's first write after the
    takeover already fails (FAILED_PRECONDITION), the store keeps nothing of it, and the
    chief stops serving right away."""
    first = start_chief(chief_lease_seconds=60)
    with Client(first.address, retry_seconds=0, timeout=5, wait_seconds=0.5) as old:
        old.create_study(FENCED_STUDY)
        running = old.ask("fenced", "w0")[0]
        start_chief(chief_lease_seconds=60, takeover=True)
        assert not first.done.is_set()  # its next renewal is many seconds away
        with pytest.raises(FailedPreconditionError, match=r"lost its lease .*--takeover"):
            old.tell("fenced", running.number, running.attempt, value=1.0)
        # Refused too, or cut off or refused by the chief stopping (see below).
        with pytest.raises(HpsearchError):
            old.ask("fenced", "w1")
    # The refused writes woke its renewer, which found the lease lost: it stopped serving
    # at once, not at its next renewal 20 s away.
    assert first.done.wait(5), "the fenced chief kept serving until its renewal"
    assert isinstance(first.lost_lease, ChiefLeaseLostError)
    with Store(storage_url) as store:
        trials = store.list_trials("fenced")
    assert [(t.number, t.state.name, t.value) for t in trials] == [(0, "RUNNING", None)]


def test_a_stopped_chief_hands_over_at_once(start_chief: StartChief) -> None:
    first = start_chief(chief_lease_seconds=60)
    first.stop(0)
    second = start_chief(chief_lease_seconds=60)  # no wait for the 60 s lease
    assert second.lease is not None and first.lease is not None
    assert second.lease.epoch == first.lease.epoch + 1


def test_second_chief_process_told_not_to_wait_exits_with_a_clear_error(
    start_chief: StartChief, storage_url: str
) -> None:
    first = start_chief()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpsearch.chief",
            "--storage",
            storage_url,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-wait-for-lease",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert run.returncode == 2
    assert "another chief" in run.stderr and first.holder in run.stderr
    assert "--takeover" in run.stderr
    with grpc.insecure_channel(first.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_fenced_chief_process_stops_and_exits_2(
    start_chief: StartChief, storage_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        first = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hpsearch.chief",
                "--storage",
                storage_url,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--chief-lease-seconds",
                "1.5",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        deadline = time.monotonic() + 30
        with Store(storage_url) as store:
            while store.chief_lease() is None and time.monotonic() < deadline:
                assert first.poll() is None, log.read_text()
                time.sleep(0.1)
            holder = store.chief_lease()
        assert holder is not None
        second = start_chief(takeover=True)
        assert first.wait(15) == 2
        text = log.read_text()
        assert "lost its lease" in text and second.holder in text
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
