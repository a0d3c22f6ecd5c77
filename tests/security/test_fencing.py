"""Two chiefs never serve one store at once: the fencing lease in the store and the chief."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import FailedPreconditionError, HpsearchError, StorageError
from hpsearch.store import Store
from hpsearch.store.fencing import ChiefLeaseHeldError, ChiefLeaseLostError

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


def test_second_chief_process_exits_with_a_clear_error(
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
