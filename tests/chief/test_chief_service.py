"""The chief over gRPC (hpsearch.v1 client, in-process chief): scheduling, budget, leases,
bad input.  Each test checks the stored trials through the public API."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import grpc
import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
)
from hpsearch.protos import keras_tuner_service_pb2 as kt_service
from hpsearch.protos import keras_tuner_service_pb2_grpc as kt_grpc
from hpsearch.protos import study_service_pb2 as pb2
from hpsearch.protos import study_service_pb2_grpc as pb2_grpc
from hpsearch.records import Trial, TrialState
from hpsearch.store import Store

from .conftest import study_yaml


def test_a_study_runs_to_its_budget_and_then_answers_done(client: Client) -> None:
    client.create_study(study_yaml("s1", budget="{max_trials: 5, parallel_trials: 2}"))
    told = {}
    while trials := client.ask("s1", "w0"):
        trial = trials[0]
        assert trial.state is TrialState.RUNNING and trial.attempt == 1
        assert 0.001 <= trial.params["lr"] <= 0.1 and 4 <= trial.params["units"] <= 16
        value = trial.params["units"] / 16
        client.report("s1", trial.number, trial.attempt, 1, {"score": value / 2})
        client.tell("s1", trial.number, trial.attempt, metrics={"score": value})
        told[trial.number] = value
    assert sorted(told) == [0, 1, 2, 3, 4]
    stored = client.list_trials("s1")
    assert [t.number for t in stored] == [0, 1, 2, 3, 4]
    assert all(t.state is TrialState.COMPLETED for t in stored)
    assert {t.number: t.value for t in stored} == told
    best = client.best("s1", 2)
    assert [t.value for t in best] == sorted(told.values(), reverse=True)[:2]
    assert client.get_study("s1").state.value == "COMPLETED"


def test_a_worker_holding_a_trial_gets_the_same_trial_back(client: Client) -> None:
    client.create_study(study_yaml("s2"))
    first = client.ask("s2", "w0")
    again = client.ask("s2", "w0")
    assert [(t.number, t.attempt) for t in again] == [(t.number, t.attempt) for t in first]
    assert len(client.list_trials("s2")) == 1


LONG_HOLD = 30.0  # seconds a held ask waits when nothing wakes it


def _without_periodic_resync(chief: Chief) -> None:
    """Turn off the sweeper's safety net, the re-read of every study from SQL every 5 s, so
    that a test sees whether the event it is about wakes held calls by itself."""
    assert chief.oracle is not None
    chief.oracle.resync_seconds = 3600.0


def test_parallel_limit_holds_the_call_then_wakes_on_a_result(chief: Chief) -> None:
    _without_periodic_resync(chief)
    with Client(chief.address, timeout=10.0, wait_seconds=LONG_HOLD) as client:
        client.create_study(study_yaml("s3", budget="{max_trials: 4, parallel_trials: 1}"))
        (running,) = client.ask("s3", "w0")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.ask("s3", "w1", timeout=0.5)
        assert time.monotonic() - started >= 0.45  # held, not answered at once

        got: list[float] = []

        def second_worker() -> None:
            client.ask("s3", "w1", timeout=2 * LONG_HOLD)
            got.append(time.monotonic())

        thread = threading.Thread(target=second_worker)
        thread.start()
        time.sleep(0.3)  # w1's call is held now (were it not, it would still get the trial)
        told_at = time.monotonic()
        client.tell("s3", running.number, running.attempt, value=1.0)
        thread.join(2 * LONG_HOLD)
        assert got, "the waiting worker never got a trial"
    # Woken by the result: well before the 30 s hold runs out, however loaded the machine.
    assert got[0] - told_at < LONG_HOLD / 3, f"woken {got[0] - told_at:.1f}s after the result"


def test_kt_create_trial_is_held_not_busy_looped(chief_storage: str, tmp_path: Path) -> None:
    """A stock Keras Tuner worker re-calls at once on IDLE: the chief must hold the call."""
    study_file = tmp_path / "kt.yaml"
    study_file.write_text(study_yaml("kt", budget="{max_trials: 3, parallel_trials: 1}"))
    kt = Chief(chief_storage, study=str(study_file), host="127.0.0.1", port=0, hold_seconds=1.0)
    with kt, grpc.insecure_channel(kt.address) as channel:
        stub = kt_grpc.OracleStub(channel)
        first = stub.CreateTrial(kt_service.CreateTrialRequest(tuner_id="a"), timeout=5)
        assert first.trial.status == 1 and first.trial.trial_id == "0"  # RUNNING
        assert first.trial.hyperparameters.values.values["units"].WhichOneof("kind") == "int_value"
        calls, started = 0, time.monotonic()
        while time.monotonic() - started < 2.0:
            idle = stub.CreateTrial(kt_service.CreateTrialRequest(tuner_id="b"), timeout=5)
            assert idle.trial.status == 2  # IDLE
            calls += 1
        assert calls <= 3, f"{calls} CreateTrial calls in 2 s: the chief is not holding"


def test_unknown_study_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        client.ask("nope", "w0")
    with pytest.raises(NotFoundError):
        client.get_study("nope")


def test_creating_a_study_twice_is_refused_unless_identical_and_exist_ok(client: Client) -> None:
    client.create_study(study_yaml("dup"))
    with pytest.raises(AlreadyExistsError):
        client.create_study(study_yaml("dup"))
    assert client.create_study(study_yaml("dup"), exist_ok=True).name == "dup"


def test_create_study_takes_long_one_line_json_text_and_a_path_alike(
    client: Client, tmp_path: Path
) -> None:
    config = {
        "name": "one-line",
        "metric": {"name": "val_accuracy", "goal": "maximize"},
        "parameters": {
            "learning_rate": {"type": "double", "min": 0.0001, "max": 0.1, "scale": "log"},
            "n_hidden": {"type": "integer", "min": 0, "max": 10},
            "n_neurons": {"type": "integer", "min": 1, "max": 300, "scale": "log"},
            "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
            "batch_size": {"type": "discrete", "values": [32, 64, 128]},
        },
        "budget": {"max_trials": 20, "parallel_trials": 4},
    }
    text = json.dumps(config)
    assert len(text) > 255 and "\n" not in text  # longer than a file name may be
    study = client.create_study(text)
    assert study.name == "one-line" and len(study.config.space) == 5
    path = tmp_path / "from-file.json"
    path.write_text(json.dumps({**config, "name": "from-file"}))
    assert client.create_study(str(path)).name == "from-file"
    assert client.create_study(path, exist_ok=True).name == "from-file"
    assert sorted(s.name for s in client.list_studies()) == ["from-file", "one-line"]


def test_an_invalid_study_file_is_invalid_argument(client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match="min"):
        client.create_study(
            "name: bad\nmetric: m\nparameters: {x: {type: double, min: 2, max: 1}}\n"
        )
    assert [s.name for s in client.list_studies()] == []


def test_nan_or_inf_metric_is_refused_and_nothing_is_stored(client: Client) -> None:
    client.create_study(study_yaml("nan"))
    (trial,) = client.ask("nan", "w0")
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidArgumentError, match="finite"):
            client.tell("nan", trial.number, trial.attempt, value=bad)
        with pytest.raises(InvalidArgumentError, match="finite"):
            client.report("nan", trial.number, trial.attempt, 1, {"score": bad})
    stored = client.get_trial("nan", trial.number)
    assert stored.state is TrialState.RUNNING and stored.value is None


def test_a_missing_objective_is_refused(client: Client) -> None:
    client.create_study(study_yaml("noobj"))
    (trial,) = client.ask("noobj", "w0")
    with pytest.raises(InvalidArgumentError, match="score"):
        client.tell("noobj", trial.number, trial.attempt, metrics={"loss": 0.3})
    assert client.get_trial("noobj", trial.number).state is TrialState.RUNNING


def test_an_oversize_message_is_refused(client: Client, chief: Chief) -> None:
    client.create_study(study_yaml("big"))
    (trial,) = client.ask("big", "w0")
    with grpc.insecure_channel(chief.address) as channel:
        stub = pb2_grpc.StudyServiceStub(channel)
        request = pb2.CompleteTrialRequest(
            study="big",
            number=trial.number,
            attempt=trial.attempt,
            failure_message="x" * 5_000_000,
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.CompleteTrial(request, timeout=10)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.get_trial("big", trial.number).state is TrialState.RUNNING


def test_completing_twice_is_idempotent(client: Client) -> None:
    client.create_study(study_yaml("twice", budget="{max_trials: 2, parallel_trials: 1}"))
    (trial,) = client.ask("twice", "w0")
    first = client.tell("twice", trial.number, trial.attempt, value=0.5)
    second = client.tell("twice", trial.number, trial.attempt, value=0.5)
    assert first.state is second.state is TrialState.COMPLETED
    assert second.value == 0.5
    (nxt,) = client.ask("twice", "w0")
    assert nxt.number == 1  # the duplicate did not free or consume a slot twice
    client.tell("twice", nxt.number, nxt.attempt, value=0.1)
    assert client.ask("twice", "w0") == []
    assert [t.state for t in client.list_trials("twice")] == [TrialState.COMPLETED] * 2


def _attempt_states(chief: Chief, study: str, number: int) -> list[str]:
    store = Store(chief.storage)
    try:
        return [a.state.value for a in store.list_attempts(study, number)]
    finally:
        store.close()


def _lost_and_retried(client: Client, study: str) -> tuple[Trial, Trial]:
    """Trial 0 of a new one-trial study, given to slow-worker (which sends no heartbeat
    within its 1 s lease), then retried by w1 as attempt 2."""
    client.create_study(
        study_yaml(study, budget="{max_trials: 1, parallel_trials: 1}", lease_seconds=1)
    )
    (lost,) = client.ask(study, "slow-worker")
    (retried,) = client.ask(study, "w1", timeout=30)
    assert (retried.number, retried.attempt) == (lost.number, 2)
    return lost, retried


def test_an_expired_lease_hands_the_trial_over_at_the_next_sweep(chief: Chief) -> None:
    """The sweeper (every 0.2 s here) that finds the lease expired wakes the held ask of
    another worker: the hand-off does not wait for the periodic re-read of the study."""
    _without_periodic_resync(chief)
    with Client(chief.address, timeout=10.0, wait_seconds=LONG_HOLD) as client:
        client.create_study(
            study_yaml("handoff", budget="{max_trials: 1, parallel_trials: 1}", lease_seconds=1)
        )
        (lost,) = client.ask("handoff", "slow-worker")
        expires = time.monotonic() + 1.0  # the lease, on this side of the wire
        (retried,) = client.ask("handoff", "w1", timeout=2 * LONG_HOLD)
        handed_over = time.monotonic() - expires
    assert (retried.number, retried.attempt) == (lost.number, 2)
    assert handed_over < LONG_HOLD / 3, f"handed over {handed_over:.1f}s after the lease expired"


def test_a_late_result_counts_when_no_other_attempt_completed_the_trial(
    client: Client, chief: Chief
) -> None:
    lost, retried = _lost_and_retried(client, "lease")
    counted = client.tell("lease", lost.number, lost.attempt, value=0.9)  # late, but first
    assert (counted.state, counted.attempt, counted.value) == (TrialState.COMPLETED, 1, 0.9)
    assert counted.worker_id == "slow-worker"
    with pytest.raises(StaleAttemptError, match="already ended as STOPPED"):
        client.heartbeat("lease", retried.number, retried.attempt)  # the retry is told to stop
    acknowledged = client.tell("lease", retried.number, retried.attempt, value=0.4)
    assert (acknowledged.attempt, acknowledged.value) == (1, 0.9)  # not stored twice
    (final,) = client.list_trials("lease")
    assert (final.state, final.attempt, final.value) == (TrialState.COMPLETED, 1, 0.9)
    assert _attempt_states(chief, "lease", 0) == ["COMPLETED", "STOPPED"]
    assert client.ask("lease", "w1") == []  # the study is done: the late result counted


def test_a_late_result_after_the_retry_completed_is_acknowledged_not_stored(
    client: Client, chief: Chief
) -> None:
    lost, retried = _lost_and_retried(client, "lease2")
    client.tell("lease2", retried.number, retried.attempt, value=0.4)
    answer = client.tell("lease2", lost.number, lost.attempt, value=0.9)
    assert (answer.state, answer.attempt, answer.value) == (TrialState.COMPLETED, 2, 0.4)
    (final,) = client.list_trials("lease2")
    assert (final.attempt, final.value) == (2, 0.4)
    assert _attempt_states(chief, "lease2", 0) == ["LOST", "COMPLETED"]
    assert [t.value for t in client.best("lease2", 5)] == [0.4]


def test_a_heartbeat_revives_a_lost_attempt_before_its_retry_starts(
    client: Client, chief: Chief
) -> None:
    client.create_study(
        study_yaml("revive", budget="{max_trials: 1, parallel_trials: 1}", lease_seconds=1)
    )
    (trial,) = client.ask("revive", "cut-off")
    deadline = time.monotonic() + 30
    while client.get_trial("revive", trial.number).state is not TrialState.WAITING:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.1)
    status = client.heartbeat("revive", trial.number, trial.attempt)  # back in time
    assert not status.should_stop
    back = client.get_trial("revive", trial.number)
    assert (back.state, back.attempt, back.worker_id) == (TrialState.RUNNING, 1, "cut-off")
    done = client.tell("revive", trial.number, trial.attempt, value=0.5)
    assert (done.state, done.attempt) == (TrialState.COMPLETED, 1)
    assert _attempt_states(chief, "revive", 0) == ["COMPLETED"]
    assert client.ask("revive", "w1") == []


def test_heartbeats_keep_a_lease_alive(client: Client) -> None:
    lease = 4.0  # the heartbeats come every 0.5 s: a 3.5 s margin for a loaded machine
    client.create_study(study_yaml("hb", lease_seconds=lease))
    (trial,) = client.ask("hb", "w0")
    until, expiries = time.monotonic() + 1.5 * lease, []
    while time.monotonic() < until:
        status = client.heartbeat("hb", trial.number, trial.attempt)
        assert not status.should_stop
        expiries.append(status.lease_expires_at)
        time.sleep(0.5)
    assert expiries == sorted(expiries) and expiries[-1] > expiries[0]  # each one renews
    done = client.tell("hb", trial.number, trial.attempt, value=1.0)
    assert (done.state, done.attempt) == (TrialState.COMPLETED, 1)


def test_failures_are_retried_then_max_failed_trials_ends_the_study(client: Client) -> None:
    client.create_study(
        study_yaml(
            "fail",
            budget="{max_trials: 10, parallel_trials: 1, max_failed_trials: 2, max_attempts: 2}",
        )
    )
    (t,) = client.ask("fail", "w0")
    retried = client.tell(
        "fail", t.number, t.attempt, state="FAILED", failure_message="oom", retry=True
    )
    assert retried.state is TrialState.WAITING
    (again,) = client.ask("fail", "w0")
    assert (again.number, again.attempt) == (t.number, 2)
    client.tell("fail", again.number, again.attempt, state="FAILED", failure_message="oom")
    (t2,) = client.ask("fail", "w0")
    client.tell("fail", t2.number, t2.attempt, state="FAILED", failure_message="boom")
    assert client.ask("fail", "w0") == []
    stored = client.list_trials("fail")
    assert [t.state for t in stored] == [TrialState.FAILED, TrialState.FAILED]
    assert stored[1].failure_message == "boom"


def test_many_workers_never_exceed_max_trials_or_parallel_trials(client: Client) -> None:
    client.create_study(study_yaml("crowd", budget="{max_trials: 12, parallel_trials: 3}"))
    running: set[int] = set()
    peak = [0]
    lock = threading.Lock()

    def worker(wid: str) -> None:
        while trials := client.ask("crowd", wid):
            trial = trials[0]
            with lock:
                running.add(trial.number)
                peak[0] = max(peak[0], len(running))
            time.sleep(0.02)
            with lock:
                running.discard(trial.number)
            client.tell("crowd", trial.number, trial.attempt, value=float(trial.number))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stored = client.list_trials("crowd")
    assert [t.number for t in stored] == list(range(12))
    assert all(t.state is TrialState.COMPLETED and t.attempt == 1 for t in stored)
    assert peak[0] <= 3


def test_a_sequential_study_is_handed_suggestions_that_know_the_last_result(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unseeded Bayesian study, one trial at a time: every trial handed out was proposed
    from all the results told before it was asked for.  Before, the suggestion computed
    while the previous trial ran was handed out right after its result, so the study
    searched as with two trials in flight, each proposed without the latest result."""
    import hpsearch.search as search

    real = search.suggest
    known_when_proposed: dict[tuple[object, ...], int] = {}

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        proposals = real(*args, **kwargs)
        for params in proposals:
            known_when_proposed[tuple(sorted(params.items()))] = len(args[1])
        return proposals

    monkeypatch.setattr(search, "suggest", recording)
    # A fit here takes milliseconds: a wait for it that ends is a missed refit, not load.
    monkeypatch.setattr("hpsearch.oracle.mirror.FRESH_WAIT_SECONDS", 60.0)
    config = study_yaml(
        "fresh", algorithm="bayesian", budget="{max_trials: 10, parallel_trials: 1}"
    )
    client.create_study(config)
    for told in range(10):
        (trial,) = client.ask("fresh", "w0", timeout=30)
        assert known_when_proposed[tuple(sorted(trial.params.items()))] == told
        value = -abs(math.log10(trial.params["lr"]) + 2) - abs(trial.params["units"] - 9) / 10
        client.tell("fresh", trial.number, trial.attempt, value=value)


def test_a_slow_suggestion_does_not_delay_heartbeats(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats are answered while a suggestion is being computed: here one that does not
    end until the test lets it, so no timing bound is needed (a heartbeat stuck behind it
    would run into its deadline).  Latency figures: benchmarks/heartbeat_latency.py."""
    import hpsearch.search as search

    real = search.suggest
    entered, release = threading.Event(), threading.Event()

    def stuck(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    client.create_study(study_yaml("slow", budget="{max_trials: 3, parallel_trials: 1}"))
    (trial,) = client.ask("slow", "w0")  # the first buffer was filled at full speed
    monkeypatch.setattr(search, "suggest", stuck)
    client.create_study(study_yaml("other"))
    asker = threading.Thread(target=lambda: client.ask("other", "w9", timeout=60))
    asker.start()  # "other" now needs a suggestion: the suggester is stuck in it
    try:
        assert entered.wait(30), "the suggester never started a suggestion"
        for _ in range(5):
            status = client.heartbeat("slow", trial.number, trial.attempt)
            assert not status.should_stop
        assert not release.is_set() and asker.is_alive()  # all answered during the suggestion
        client.tell("slow", trial.number, trial.attempt, value=1.0)
    finally:
        release.set()
        asker.join(60)


@pytest.mark.parametrize("seed", ["seed: 7\n", ""], ids=["seeded", "unseeded"])
def test_a_bayesian_study_learns_from_stopped_and_failed_trials(client: Client, seed: str) -> None:
    # One worker at a time; the median rule stops every trial after the first two.  A
    # stopped trial used to teach the search nothing: the history and the running set were
    # as before it, so the next ask got the same parameters again, and again.
    config = study_yaml(
        "learns", algorithm="bayesian", budget="{max_trials: 12, parallel_trials: 1}"
    )
    config += seed + "early_stopping: {rule: median, min_trials: 2, min_steps: 1}\n"
    client.create_study(config)
    seen = []
    for i in range(12):
        (trial,) = client.ask("learns", "w0")
        seen.append((trial.params["lr"], trial.params["units"]))
        if i < 2:
            client.report("learns", trial.number, trial.attempt, 1, {"score": 0.9})
            client.tell("learns", trial.number, trial.attempt, value=0.9)
        elif i % 4 == 3:
            client.tell("learns", trial.number, trial.attempt, state="FAILED")
        else:
            status = client.report(
                "learns", trial.number, trial.attempt, 1, {"score": 0.1 + i / 100}
            )
            assert status.should_stop
            stopped = client.tell("learns", trial.number, trial.attempt, state="STOPPED")
            # No value told: it keeps its measurements' (the study measures "best").
            assert stopped.state is TrialState.STOPPED and stopped.value == 0.1 + i / 100
    assert len(set(seen)) == len(seen), f"parameters proposed again: {seen}"


def test_median_stopping_rule_stops_a_trial_behind_the_median(client: Client) -> None:
    config = study_yaml("median", budget="{max_trials: 6, parallel_trials: 2}")
    client.create_study(config + "early_stopping: {rule: median, min_trials: 2, min_steps: 1}\n")
    for curve in ([0.5, 0.6, 0.7], [0.4, 0.6, 0.8]):
        (trial,) = client.ask("median", "w0")
        for step, value in enumerate(curve, start=1):
            status = client.report("median", trial.number, trial.attempt, step, {"score": value})
            assert not status.should_stop
        client.tell("median", trial.number, trial.attempt, value=curve[-1])
    (behind,) = client.ask("median", "w1")
    (ahead,) = client.ask("median", "w2")
    status = client.report("median", behind.number, behind.attempt, 1, {"score": 0.1})
    assert status.should_stop and "median" in status.reason
    assert not client.report("median", ahead.number, ahead.attempt, 1, {"score": 0.9}).should_stop
    stopped = client.tell("median", behind.number, behind.attempt, state="STOPPED")
    assert stopped.state is TrialState.STOPPED
