"""Workers waiting for a trial (held asks) never take every RPC thread: a heartbeat, a
result and a health check are answered at once however many workers wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hpsearch.chief import Chief
from hpsearch.client import Client

STUDY = """\
name: held
metric: {name: score, goal: maximize}
parameters:
  x: {type: double, min: 0, max: 1}
budget: {max_trials: 2, parallel_trials: 1}
algorithm: random
"""
THREADS = 8  # the chief's RPC threads
WAITERS = 12  # more workers waiting for a trial than threads
HOLD = 20.0  # each waiter asks to be held this long


def test_more_waiting_workers_than_rpc_threads_delay_no_heartbeat(tmp_path: Path) -> None:
    chief = Chief(
        f"sqlite:///{tmp_path / 'held.db'}", host="127.0.0.1", port=0, max_workers=THREADS
    ).start()
    try:
        with Client(chief.address) as client:
            client.create_study(STUDY)
            (trial,) = client.ask("held", "runner")  # the one trial the limit allows
            outcomes: list[str] = []

            def wait_for_a_trial(i: int) -> None:
                with Client(chief.address, wait_seconds=HOLD) as waiter:
                    got = waiter.ask("held", f"waiter{i}", timeout=60)
                    for t in got:  # the second trial, once the first has ended
                        waiter.tell("held", t.number, t.attempt, value=0.1)
                    outcomes.append("trial" if got else "done")

            waiters = [
                threading.Thread(target=wait_for_a_trial, args=(i,)) for i in range(WAITERS)
            ]
            for thread in waiters:
                thread.start()
            time.sleep(2.0)  # every waiter's ask is in (held, or answered and paused)

            started = time.monotonic()
            client.heartbeat("held", trial.number, trial.attempt, "runner")
            with grpc.insecure_channel(chief.address) as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=30
                )
            took = time.monotonic() - started
            # Before the hold budget a heartbeat queued behind the held asks until one of
            # their holds ran out: about HOLD - 2 s here.
            assert took < 5.0, f"heartbeat and health check took {took:.1f}s"
            assert health.status == health_pb2.HealthCheckResponse.SERVING

            client.tell("held", trial.number, trial.attempt, value=0.5)
            for thread in waiters:
                thread.join(60)
            # One waiter ran the second trial; every other one learned the study is done
            # (a waiter over the budget asked again after a pause, it did not give up).
            assert sorted(outcomes) == ["done"] * (WAITERS - 1) + ["trial"]
    finally:
        chief.stop(0)
