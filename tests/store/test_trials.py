"""The trial life cycle through the Store's public methods, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import re
import time

import pytest

from hpsearch.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
)
from hpsearch.records import AttemptState, StudyState, TrialState
from hpsearch.space import DoubleParam, Goal, Space
from hpsearch.store import Store

from .helpers import study_config


def test_create_get_and_exist_ok(store: Store) -> None:
    config = study_config("alpha")
    created = store.create_study(config)
    assert created.name == "alpha" and created.state is StudyState.ACTIVE
    assert created.config == config
    assert store.get_study("alpha") == created
    assert store.create_study(config, exist_ok=True) == created
    with pytest.raises(AlreadyExistsError, match="already exists"):
        store.create_study(config)
    with pytest.raises(AlreadyExistsError, match="different configuration"):
        store.create_study(study_config("alpha", goal=Goal.MINIMIZE), exist_ok=True)
    with pytest.raises(NotFoundError, match="no study 'beta'"):
        store.get_study("beta")


def test_claim_complete_and_idempotent_repeat(store: Store) -> None:
    name = store.create_study(study_config()).name
    waiting = store.create_trial(name, {"x": 0.5}, tags={"kt": "a1"})
    assert (waiting.number, waiting.state, waiting.attempt) == (0, TrialState.WAITING, 0)
    assert waiting.tags == {"kt": "a1"} and waiting.lease_expires_at is None

    running = store.claim_trial(name, "w1", lease_seconds=30)
    assert running is not None
    assert (running.number, running.state, running.attempt) == (0, TrialState.RUNNING, 1)
    assert running.worker_id == "w1"
    assert running.lease_expires_at is not None
    assert 29 < running.lease_expires_at - store.db_now() <= 30
    assert store.running_trial_of(name, "w1") == running
    assert store.claim_trial(name, "w2") is None

    done = store.complete_trial(name, 0, 1, 0.75, {"loss": 0.1})
    assert (done.state, done.value, done.metrics) == (TrialState.COMPLETED, 0.75, {"loss": 0.1})
    assert done.lease_expires_at is None and done.completed_at is not None
    assert store.complete_trial(name, 0, 1, 0.75, {"loss": 0.1}) == done
    assert store.complete_trial(name, 0, 1, 0.75) == done
    with pytest.raises(StaleAttemptError, match=r"already ended as COMPLETED with value 0.75"):
        store.complete_trial(name, 0, 1, 0.5)
    with pytest.raises(StaleAttemptError, match="already ended as COMPLETED"):
        store.fail_trial(name, 0, 1, "late failure")
    assert store.get_trial(name, 0) == done
    assert store.running_trial_of(name, "w1") is None
    [attempt] = store.list_attempts(name, 0)
    assert (attempt.attempt, attempt.worker_id, attempt.state) == (1, "w1", AttemptState.COMPLETED)
    assert attempt.ended_at is not None and attempt.ended_at >= attempt.started_at


def test_create_trial_running_for_a_worker(store: Store) -> None:
    name = store.create_study(study_config(lease_seconds=120)).name
    trial = store.create_trial(name, {"x": 1}, worker_id="w9")
    assert (trial.state, trial.attempt, trial.worker_id) == (TrialState.RUNNING, 1, "w9")
    assert trial.lease_expires_at is not None
    assert 119 < trial.lease_expires_at - store.db_now() <= 120  # the study's lease
    assert store.claim_trial(name, "other") is None
    assert [a.state for a in store.list_attempts(name, 0)] == [AttemptState.RUNNING]
    assert store.complete_trial(name, 0, 1, 1.0).state is TrialState.COMPLETED


def test_report_for_a_wrong_attempt_is_refused_and_changes_nothing(store: Store) -> None:
    name = store.create_study(study_config()).name
    store.create_trial(name, {})
    running = store.claim_trial(name, "w1")
    assert running is not None
    with pytest.raises(StaleAttemptError, match=r"attempt 2 of study .* does not exist"):
        store.complete_trial(name, 0, 2, 1.0)
    with pytest.raises(StaleAttemptError):
        store.renew_lease(name, 0, 0)
    with pytest.raises(NotFoundError, match="no trial 5"):
        store.complete_trial(name, 5, 1, 1.0)
    with pytest.raises(NotFoundError, match="no study"):
        store.complete_trial("nope", 0, 1, 1.0)
    assert store.get_trial(name, 0) == running


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_and_nothing_is_stored(store: Store, bad: float) -> None:
    name = store.create_study(study_config()).name
    store.create_trial(name, {})
    running = store.claim_trial(name, "w1")
    with pytest.raises(InvalidArgumentError, match="finite"):
        store.complete_trial(name, 0, 1, bad)
    with pytest.raises(InvalidArgumentError, match="finite"):
        store.complete_trial(name, 0, 1, 1.0, {"loss": bad})
    with pytest.raises(InvalidArgumentError, match="finite"):
        store.add_measurement(name, 0, 1, 1, {"loss": bad})
    with pytest.raises(InvalidArgumentError, match="finite"):
        store.create_trial(name, {"x": bad})
    assert store.get_trial(name, 0) == running
    assert store.list_measurements(name) == []
    assert store.count_trials(name)[TrialState.WAITING] == 0


def _lose_attempt(store: Store, name: str, number: int, attempt: int) -> None:
    """End ``attempt``'s lease now and let the sweep collect it (no sleeping)."""
    store.renew_lease(name, number, attempt, lease_seconds=0)
    assert [t.number for t in store.expire_leases(name)] == [number]


def test_lease_expiry_retries_then_fails_after_max_attempts(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=2)).name
    store.create_trial(name, {"x": 1})

    first = store.claim_trial(name, "w1", lease_seconds=60)
    assert first is not None and first.attempt == 1
    assert store.expire_leases(name) == []  # the lease has not passed yet
    store.renew_lease(name, 0, 1, lease_seconds=0)  # it ends now
    [lost] = store.expire_leases(name)
    assert (lost.number, lost.state, lost.attempt) == (0, TrialState.WAITING, 1)
    assert lost.lease_expires_at is None
    assert "attempt 1 lost: lease expired" in (lost.failure_message or "")
    assert store.expire_leases(name) == []

    second = store.claim_trial(name, "w2", lease_seconds=60)
    assert second is not None and (second.attempt, second.worker_id) == (2, "w2")
    assert second.failure_message is None
    with pytest.raises(StaleAttemptError, match=r"no longer running.*retried as attempt 2") as err:
        store.renew_lease(name, 0, 1)  # a heartbeat of the lost attempt, after the retry
    assert "drop this result" in str(err.value)
    store.renew_lease(name, 0, 2, lease_seconds=0)
    [failed] = store.expire_leases()
    assert (failed.state, failed.attempt) == (TrialState.FAILED, 2)
    assert failed.completed_at is not None
    assert "gave up after 2 attempts" in (failed.failure_message or "")
    assert store.claim_trial(name, "w3") is None
    attempts = store.list_attempts(name, 0)
    assert [(a.attempt, a.worker_id, a.state) for a in attempts] == [
        (1, "w1", AttemptState.LOST),
        (2, "w2", AttemptState.LOST),
    ]


def test_a_report_after_the_lease_passed_counts_until_the_sweep(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=0)  # a lease that has already passed
    store.add_measurement(name, 0, 1, 1, {"score": 2.0})
    trial = store.complete_trial(name, 0, 1, 3.0)
    assert (trial.state, trial.attempt, trial.value) == (TrialState.COMPLETED, 1, 3.0)
    assert [a.state for a in store.list_attempts(name, 0)] == [AttemptState.COMPLETED]
    assert store.expire_leases(name) == []


def test_a_late_result_completes_a_trial_waiting_for_its_retry(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    _lose_attempt(store, name, 0, 1)
    trial = store.complete_trial(name, 0, 1, 3.0, {"score": 3.0, "loss": 0.1})
    assert (trial.state, trial.attempt, trial.value) == (TrialState.COMPLETED, 1, 3.0)
    assert (trial.worker_id, trial.failure_message, trial.lease_expires_at) == ("w1", None, None)
    assert trial.metrics == {"score": 3.0, "loss": 0.1}
    assert [a.state for a in store.list_attempts(name, 0)] == [AttemptState.COMPLETED]
    assert store.complete_trial(name, 0, 1, 3.0, {"score": 3.0, "loss": 0.1}) == trial
    with pytest.raises(StaleAttemptError, match="second, different report"):
        store.complete_trial(name, 0, 1, 4.0)
    assert store.claim_trial(name, "w2") is None  # nothing left to retry


def test_a_late_result_supersedes_the_attempt_started_in_its_place(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    _lose_attempt(store, name, 0, 1)
    retry = store.claim_trial(name, "w2", lease_seconds=60)
    assert retry is not None and retry.attempt == 2
    trial = store.complete_trial(name, 0, 1, 3.0)
    assert (trial.state, trial.attempt, trial.worker_id, trial.value) == (
        TrialState.COMPLETED,
        1,
        "w1",
        3.0,
    )
    attempts = store.list_attempts(name, 0)
    assert [(a.attempt, a.worker_id, a.state) for a in attempts] == [
        (1, "w1", AttemptState.COMPLETED),
        (2, "w2", AttemptState.STOPPED),
    ]
    assert "superseded" in (attempts[1].failure_message or "")
    # The retry is told to stop at its next heartbeat; what it sends after is acknowledged.
    with pytest.raises(StaleAttemptError, match=r"attempt 2 .* already ended as STOPPED"):
        store.renew_lease(name, 0, 2)
    with pytest.raises(StaleAttemptError):
        store.add_measurement(name, 0, 2, 1, {"score": 9.0})
    assert store.complete_trial(name, 0, 2, 9.0) == trial  # acknowledged, not stored
    assert store.fail_trial(name, 0, 2, "killed") == trial
    assert store.stop_trial(name, 0, 2) == trial
    assert store.get_trial(name, 0) == trial
    assert [a.state for a in store.list_attempts(name, 0)] == [
        AttemptState.COMPLETED,
        AttemptState.STOPPED,
    ]


def test_a_late_result_after_another_attempt_completed_is_acknowledged(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    _lose_attempt(store, name, 0, 1)
    store.claim_trial(name, "w2", lease_seconds=60)
    done = store.complete_trial(name, 0, 2, 5.0)
    assert store.complete_trial(name, 0, 1, 3.0) == done  # acknowledged: not stored twice
    with pytest.raises(StaleAttemptError):
        store.add_measurement(name, 0, 1, 1, {"score": 3.0}, late=True)
    assert store.fail_trial(name, 0, 1, "late failure") == done
    assert store.get_trial(name, 0) == done
    assert (done.attempt, done.value) == (2, 5.0)
    states = [a.state for a in store.list_attempts(name, 0)]
    assert states == [AttemptState.LOST, AttemptState.COMPLETED]


def test_a_late_result_counts_after_the_trial_ran_out_of_attempts(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=1)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    _lose_attempt(store, name, 0, 1)
    assert store.get_trial(name, 0).state is TrialState.FAILED
    trial = store.complete_trial(name, 0, 1, 2.0)
    assert (trial.state, trial.value, trial.failure_message) == (TrialState.COMPLETED, 2.0, None)
    assert trial.completed_at is not None


def test_a_heartbeat_revives_a_lost_attempt_until_its_retry_starts(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    _lose_attempt(store, name, 0, 1)
    revived = store.renew_lease(name, 0, 1, lease_seconds=60)
    assert (revived.state, revived.attempt, revived.worker_id) == (TrialState.RUNNING, 1, "w1")
    assert revived.lease_expires_at is not None and revived.failure_message is None
    assert [a.state for a in store.list_attempts(name, 0)] == [AttemptState.RUNNING]
    other = store.claim_trial(name, "w2")  # trial 0 is held again: w2 gets trial 1
    assert other is not None and other.number == 1
    assert store.complete_trial(name, 0, 1, 1.5).attempt == 1
    assert [a.state for a in store.list_attempts(name, 0)] == [AttemptState.COMPLETED]


def test_late_measurements_are_kept_only_when_asked_and_while_they_can_count(
    store: Store,
) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    _lose_attempt(store, name, 0, 1)
    with pytest.raises(StaleAttemptError, match="no longer running"):
        store.add_measurement(name, 0, 1, 3, {"score": 0.5})
    record = store.add_measurement(name, 0, 1, 3, {"score": 0.5}, late=True)
    assert (record.attempt, record.step, record.metrics) == (1, 3, {"score": 0.5})
    again = store.add_measurement(name, 0, 1, 3, {"score": 0.9}, late=True)
    assert again.metrics == {"score": 0.5}  # the first report of a step wins
    assert [(m.attempt, m.step) for m in store.list_measurements(name, 0)] == [(1, 3)]
    assert store.get_trial(name, 0).state is TrialState.WAITING  # a measurement revives nothing


def test_an_attempt_given_up_as_lost_keeps_its_late_result(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=3)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1", lease_seconds=60)
    given_up = store.fail_trial(name, 0, 1, "w1 restarted", retry=True, lost=True)
    assert (given_up.state, given_up.failure_message) == (TrialState.WAITING, "w1 restarted")
    assert [a.state for a in store.list_attempts(name, 0)] == [AttemptState.LOST]
    assert store.fail_trial(name, 0, 1, "w1 restarted", retry=True, lost=True) == given_up
    assert store.complete_trial(name, 0, 1, 7.0).state is TrialState.COMPLETED


def test_fail_with_and_without_retry(store: Store) -> None:
    name = store.create_study(study_config(max_attempts=2)).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1")
    retried = store.fail_trial(name, 0, 1, "CUDA out of memory", retry=True)
    assert (retried.state, retried.failure_message) == (TrialState.WAITING, "CUDA out of memory")
    assert retried.completed_at is None
    assert store.fail_trial(name, 0, 1, "CUDA out of memory", retry=True) == retried
    store.claim_trial(name, "w2")
    final = store.fail_trial(name, 0, 2, "again", retry=True)  # no attempts left
    assert (final.state, final.attempt) == (TrialState.FAILED, 2)
    assert final.completed_at is not None

    store.create_trial(name, {})
    store.claim_trial(name, "w1")
    assert store.fail_trial(name, 1, 1, "bad params").state is TrialState.FAILED
    attempts = store.list_attempts(name, 0)
    assert [(a.state, a.failure_message) for a in attempts] == [
        (AttemptState.FAILED, "CUDA out of memory"),
        (AttemptState.FAILED, "again"),
    ]


def test_stop_is_idempotent(store: Store) -> None:
    name = store.create_study(study_config()).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1")
    stopped = store.stop_trial(name, 0, 1, value=0.25)
    assert (stopped.state, stopped.value) == (TrialState.STOPPED, 0.25)
    assert store.stop_trial(name, 0, 1, value=0.25) == stopped
    with pytest.raises(StaleAttemptError, match="already ended as STOPPED"):
        store.complete_trial(name, 0, 1, 0.25)
    assert store.best_trials(name) == []  # only COMPLETED trials rank


def test_measurements_are_idempotent_per_step(store: Store) -> None:
    name = store.create_study(study_config()).name
    store.create_trial(name, {})
    store.claim_trial(name, "w1")
    first = store.add_measurement(name, 0, 1, 1, {"acc": 0.5})
    assert store.add_measurement(name, 0, 1, 1, {"acc": 0.9}) == first  # first report wins
    store.add_measurement(name, 0, 1, 2, {"acc": 0.6, "loss": 1.5})
    with pytest.raises(StaleAttemptError):
        store.add_measurement(name, 0, 2, 1, {"acc": 0.7})
    with pytest.raises(InvalidArgumentError):
        store.add_measurement(name, 0, 1, -1, {"acc": 0.7})
    store.complete_trial(name, 0, 1, 0.6)
    assert store.add_measurement(name, 0, 1, 2, {"acc": 0.6, "loss": 1.5}).step == 2
    with pytest.raises(StaleAttemptError, match="already ended as COMPLETED"):
        store.add_measurement(name, 0, 1, 3, {"acc": 0.7})
    rows = store.list_measurements(name)
    assert [(m.trial_number, m.attempt, m.step, m.metrics) for m in rows] == [
        (0, 1, 1, {"acc": 0.5}),
        (0, 1, 2, {"acc": 0.6, "loss": 1.5}),
    ]
    assert store.list_measurements(name, 0) == rows
    with pytest.raises(NotFoundError):
        store.list_measurements(name, 7)


@pytest.mark.parametrize(
    ("goal", "expected"), [(Goal.MAXIMIZE, [3, 1, 4]), (Goal.MINIMIZE, [0, 2, 4])]
)
def test_best_trials_follow_the_goal(store: Store, goal: Goal, expected: list[int]) -> None:
    name = store.create_study(study_config(goal=goal)).name
    values = [0.1, 0.8, 0.3, 0.9, 0.5]
    for value in values:
        store.create_trial(name, {})
        trial = store.claim_trial(name, "w")
        assert trial is not None
        store.complete_trial(name, trial.number, 1, value)
    store.create_trial(name, {})  # a waiting trial never ranks
    best = store.best_trials(name, 3)
    assert [t.number for t in best] == expected
    assert store.best_trials(name, 0) == []
    summary = next(s for s in store.list_studies() if s.study.name == name)
    assert summary.best_value == (0.9 if goal is Goal.MAXIMIZE else 0.1)


def test_list_count_and_summaries(store: Store) -> None:
    a = store.create_study(study_config("a-study")).name
    b = store.create_study(study_config("b-study", goal=Goal.MINIMIZE)).name
    for _ in range(4):
        store.create_trial(a, {"x": 1})
    store.claim_trial(a, "w1")
    store.claim_trial(a, "w2")
    store.complete_trial(a, 0, 1, 2.0)
    assert [t.number for t in store.list_trials(a)] == [0, 1, 2, 3]
    assert [t.number for t in store.list_trials(a, states=[TrialState.WAITING])] == [2, 3]
    assert [t.number for t in store.list_trials(a, offset=1, limit=2)] == [1, 2]
    counts = store.count_trials(a)
    assert counts == {
        TrialState.WAITING: 2,
        TrialState.RUNNING: 1,
        TrialState.COMPLETED: 1,
        TrialState.FAILED: 0,
        TrialState.STOPPED: 0,
    }
    assert sum(store.count_trials(b).values()) == 0
    assert store.list_trials(b) == []
    summaries = {s.study.name: s for s in store.list_studies()}
    assert list(summaries) == [a, b]
    assert summaries[a].counts == counts and summaries[a].best_value == 2.0
    assert summaries[b].best_value is None
    last = summaries[a].last_activity
    assert last is not None and last >= summaries[a].study.created_at
    with pytest.raises(NotFoundError):
        store.count_trials("missing")
    with pytest.raises(NotFoundError):
        store.list_trials("missing")


def test_update_space_state_and_delete(store: Store) -> None:
    name = store.create_study(study_config()).name
    space = Space((DoubleParam("lr", 1e-4, 1e-1),))
    updated = store.update_space(name, space)
    assert updated.config.space == space and store.get_study(name).config.space == space
    assert store.set_study_state(name, StudyState.STOPPED).state is StudyState.STOPPED
    store.create_trial(name, {"lr": 0.01})
    store.claim_trial(name, "w1")
    store.add_measurement(name, 0, 1, 1, {"acc": 0.1})
    store.delete_study(name)
    with pytest.raises(NotFoundError):
        store.get_study(name)
    with pytest.raises(NotFoundError):
        store.delete_study(name)
    # A new study of the same name starts from trial 0 with nothing left over.
    store.create_study(study_config(name))
    assert store.create_trial(name, {}).number == 0
    assert store.list_measurements(name) == []


def test_workers(store: Store) -> None:
    first = store.touch_worker("w1", host="gpu-1", info={"gpus": 2})
    again = store.touch_worker("w1")
    assert (again.host, again.info) == ("gpu-1", {"gpus": 2})
    assert again.last_seen >= first.last_seen
    store.touch_worker("w0", info={"gpus": 0})
    assert [w.id for w in store.list_workers()] == ["w0", "w1"]
    with pytest.raises(InvalidArgumentError):
        store.touch_worker("")


def test_database_clock_is_seconds_since_the_epoch(store: Store) -> None:
    assert abs(store.db_now() - time.time()) < 5


def test_create_trials_in_one_batch(store: Store) -> None:
    name = store.create_study(study_config()).name
    store.create_trial(name, {"x": 0})
    batch = store.create_trials(name, [{"x": 1}, {"x": 2}, {"x": 3}], tags=[{}, {"k": 1}, {}])
    assert [(t.number, t.params, t.state) for t in batch] == [
        (1, {"x": 1}, TrialState.WAITING),
        (2, {"x": 2}, TrialState.WAITING),
        (3, {"x": 3}, TrialState.WAITING),
    ]
    assert batch[1].tags == {"k": 1}
    assert store.create_trials(name, []) == []
    assert store.create_trial(name, {}).number == 4
    claimed = store.claim_trial(name, "w")
    assert claimed is not None and claimed.number == 0
    with pytest.raises(InvalidArgumentError, match="tag mappings"):
        store.create_trials(name, [{"x": 1}], tags=[])
    with pytest.raises(InvalidArgumentError, match="finite"):
        store.create_trials(name, [{"x": 1}, {"x": math.nan}])
    with pytest.raises(NotFoundError):
        store.create_trials("missing", [{"x": 1}])
    assert sum(store.count_trials(name).values()) == 5


@pytest.mark.parametrize("number", [2**63, 2**31, -1])
def test_a_trial_number_out_of_range_is_invalid_argument(store: Store, number: int) -> None:
    study = store.create_study(study_config()).name
    trial = store.create_trial(study, {}, worker_id="w")
    calls = [
        lambda: store.get_trial(study, number),
        lambda: store.list_attempts(study, number),
        lambda: store.renew_lease(study, number, 1),
        lambda: store.add_measurement(study, number, 1, 1, {"score": 1.0}),
        lambda: store.complete_trial(study, number, 1, 1.0),
        lambda: store.fail_trial(study, number, 1, "x"),
        lambda: store.stop_trial(study, number, 1),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="trial number must be an integer"):
            call()
    assert store.get_trial(study, trial.number).state is TrialState.RUNNING


@pytest.mark.postgres
def test_a_nul_character_is_invalid_on_postgresql_and_stores_nothing(postgres_url: str) -> None:
    """PostgreSQL cannot hold a NUL in a text: the caller gets InvalidArgumentError saying
    so (gRPC INVALID_ARGUMENT), not a storage failure, and the trial is left as it was.
    (SQLite stores such text; found by the RPC fuzz test on PostgreSQL.)"""
    from hpsearch.errors import InvalidArgumentError as Invalid

    with Store(postgres_url) as pg:
        name = pg.create_study(study_config()).name
        trial = pg.create_trial(name, {}, worker_id="w0")
        with pytest.raises(Invalid, match="NUL"):
            pg.fail_trial(name, trial.number, trial.attempt, "bad\x00message")
        with pytest.raises(Invalid, match="NUL"):
            pg.get_study("no\x00such")
        assert pg.get_trial(name, trial.number).state is TrialState.RUNNING
        assert pg.complete_trial(name, trial.number, trial.attempt, value=1.0).value == 1.0


def test_a_report_from_a_lost_attempt_is_refused_saying_what_became_of_the_trial(
    store: Store,
) -> None:
    name = store.create_study(study_config(max_attempts=2)).name
    store.create_trial(name, {}, worker_id="w1", lease_seconds=0)
    store.expire_leases(name)
    with pytest.raises(
        StaleAttemptError,
        match=r"lease expired .* from worker w1, and the trial waits to be retried as "
        r"attempt 2; cannot add a measurement to it: drop this result",
    ):
        store.add_measurement(name, 0, 1, 1, {"score": 1.0})
    store.claim_trial(name, "w2", lease_seconds=0)
    with pytest.raises(StaleAttemptError, match=r"the trial was retried as attempt 2;"):
        store.add_measurement(name, 0, 1, 2, {"score": 1.0})
    store.expire_leases(name)  # the last attempt is lost too: max_attempts=2
    with pytest.raises(StaleAttemptError, match=r"the trial FAILED after 2 attempts;"):
        store.add_measurement(name, 0, 2, 1, {"score": 1.0})


def test_an_expired_lease_says_when_it_expired_and_whether_the_trial_gives_up(
    store: Store,
) -> None:
    name = store.create_study(study_config(max_attempts=2)).name
    when = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"  # the expiry, on the database clock
    store.create_trial(name, {}, worker_id="w1", lease_seconds=0)
    (waiting,) = store.expire_leases(name)
    assert waiting.state is TrialState.WAITING
    assert re.fullmatch(
        rf"attempt 1 lost: lease expired at {when} without a heartbeat from worker w1",
        waiting.failure_message or "",
    )
    store.claim_trial(name, "w2", lease_seconds=0)
    (failed,) = store.expire_leases(name)
    assert failed.state is TrialState.FAILED
    assert re.fullmatch(
        rf"attempt 2 lost: lease expired at {when} without a heartbeat from worker w2; "
        r"gave up after 2 attempts",
        failed.failure_message or "",
    )
    attempts = store.list_attempts(name, 0)
    assert [a.state for a in attempts] == [AttemptState.LOST, AttemptState.LOST]
    assert re.fullmatch(
        rf"lease expired at {when} .* worker w2", attempts[1].failure_message or ""
    )


def test_a_heartbeat_for_an_ended_attempt_says_it_cannot_renew_the_lease(store: Store) -> None:
    name = store.create_study(study_config()).name
    store.create_trial(name, {}, worker_id="w1", lease_seconds=60)
    store.complete_trial(name, 0, 1, 0.5)
    with pytest.raises(
        StaleAttemptError,
        match=r"attempt 1 of study .* already ended as COMPLETED; cannot renew its lease: "
        r"drop this result$",
    ):
        store.renew_lease(name, 0, 1, lease_seconds=60)
