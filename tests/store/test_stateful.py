"""A hypothesis state machine of the trial life cycle, checked against a plain model.

Rules create, claim, complete, fail, stop, measure, repeat and misdirect reports,
collect expired leases, give attempts up (a restarted worker) and send late reports of
attempts given up on, in any order; after each step the store must agree with the model
on every trial's state and attempt, every attempt's outcome, the counts and the best
trials.  A "doomed" claim takes a lease of 0 s, which has passed by the time anything
else happens, so lease expiry is exercised without sleeping.  A doomed attempt still
reports normally until the sweep collects it (the guard is the attempt, not the lease).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hpsearch.errors import StaleAttemptError
from hpsearch.records import AttemptState, TrialState
from hpsearch.space import Goal
from hpsearch.store import Store

from .helpers import study_config

MAX_ATTEMPTS = 2
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@dataclass
class ModelTrial:
    state: TrialState = TrialState.WAITING
    attempt: int = 0
    doomed: bool = False  # running on a lease that has already passed
    value: float | None = None
    outcomes: dict[int, AttemptState] = field(default_factory=dict)  # attempt -> state

    def start(self, doomed: bool) -> None:
        self.state, self.attempt, self.doomed = TrialState.RUNNING, self.attempt + 1, doomed
        self.outcomes[self.attempt] = AttemptState.RUNNING

    def end(self, state: TrialState, outcome: AttemptState) -> None:
        self.state, self.doomed = state, False
        self.outcomes[self.attempt] = outcome


class TrialLifecycle(RuleBasedStateMachine):
    store: Store  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.goal = Goal.MAXIMIZE if uuid.uuid4().int % 2 else Goal.MINIMIZE
        self.study = self.store.create_study(
            study_config(goal=self.goal, max_attempts=MAX_ATTEMPTS)
        ).name
        self.model: list[ModelTrial] = []
        self.steps: dict[tuple[int, int], dict[int, dict[str, float]]] = {}

    # -- helpers ------------------------------------------------------------------------
    def _numbers(self, *states: TrialState) -> list[int]:
        return [n for n, t in enumerate(self.model) if t.state in states]

    def _lose(self, number: int) -> None:
        trial = self.model[number]
        retried = trial.attempt < MAX_ATTEMPTS
        trial.end(TrialState.WAITING if retried else TrialState.FAILED, AttemptState.LOST)

    def _lost_attempts(self) -> list[tuple[int, int]]:
        return [
            (n, a)
            for n, t in enumerate(self.model)
            for a, outcome in t.outcomes.items()
            if outcome is AttemptState.LOST
        ]

    # -- rules --------------------------------------------------------------------------
    @rule(x=values)
    def create(self, x: float) -> None:
        trial = self.store.create_trial(self.study, {"x": x})
        assert trial.number == len(self.model)
        assert trial.state is TrialState.WAITING
        self.model.append(ModelTrial())

    @rule(xs=st.lists(values, max_size=3))
    def create_batch(self, xs: list[float]) -> None:
        trials = self.store.create_trials(self.study, [{"x": x} for x in xs])
        first = len(self.model)
        assert [t.number for t in trials] == list(range(first, first + len(xs)))
        self.model.extend(ModelTrial() for _ in xs)

    @rule(x=values, doomed=st.booleans())
    def create_running(self, x: float, doomed: bool) -> None:
        trial = self.store.create_trial(
            self.study, {"x": x}, worker_id="direct", lease_seconds=0 if doomed else 600
        )
        assert (trial.number, trial.state, trial.attempt) == (len(self.model), "RUNNING", 1)
        self.model.append(ModelTrial())
        self.model[-1].start(doomed)

    @rule(doomed=st.booleans())
    def claim(self, doomed: bool) -> None:
        trial = self.store.claim_trial(self.study, "w", lease_seconds=0 if doomed else 600)
        waiting = self._numbers(TrialState.WAITING)
        if not waiting:
            assert trial is None
            return
        assert trial is not None and trial.number == waiting[0]
        model = self.model[trial.number]
        model.start(doomed)
        assert trial.attempt == model.attempt

    @precondition(lambda self: self._numbers(TrialState.RUNNING))
    @rule(data=st.data(), value=values)
    def complete(self, data: st.DataObject, value: float) -> None:
        number = data.draw(st.sampled_from(self._numbers(TrialState.RUNNING)))
        model = self.model[number]
        trial = self.store.complete_trial(self.study, number, model.attempt, value)
        assert (trial.state, trial.value) == (TrialState.COMPLETED, value)
        model.end(TrialState.COMPLETED, AttemptState.COMPLETED)
        model.value = value

    @precondition(lambda self: self._numbers(TrialState.RUNNING))
    @rule(data=st.data(), retry=st.booleans(), lost=st.booleans())
    def fail(self, data: st.DataObject, retry: bool, lost: bool) -> None:
        number = data.draw(st.sampled_from(self._numbers(TrialState.RUNNING)))
        model = self.model[number]
        trial = self.store.fail_trial(
            self.study, number, model.attempt, "boom", retry=retry, lost=lost
        )
        retried = retry and model.attempt < MAX_ATTEMPTS
        model.end(
            TrialState.WAITING if retried else TrialState.FAILED,
            AttemptState.LOST if lost else AttemptState.FAILED,
        )
        assert trial.state is model.state

    @precondition(lambda self: self._numbers(TrialState.RUNNING))
    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(self._numbers(TrialState.RUNNING)))
        model = self.model[number]
        assert self.store.stop_trial(self.study, number, model.attempt).state == "STOPPED"
        model.end(TrialState.STOPPED, AttemptState.STOPPED)

    @precondition(lambda self: self._numbers(TrialState.RUNNING))
    @rule(data=st.data(), step=st.integers(0, 3), acc=values)
    def measure(self, data: st.DataObject, step: int, acc: float) -> None:
        number = data.draw(st.sampled_from(self._numbers(TrialState.RUNNING)))
        model = self.model[number]
        record = self.store.add_measurement(self.study, number, model.attempt, step, {"a": acc})
        stored = self.steps.setdefault((number, model.attempt), {})
        expected = stored.setdefault(step, {"a": acc})  # the first report of a step wins
        assert record.metrics == expected

    # -- late reports of attempts given up on (LOST) -------------------------------------
    @precondition(lambda self: self._lost_attempts())
    @rule(data=st.data(), value=values)
    def late_result(self, data: st.DataObject, value: float) -> None:
        number, attempt = data.draw(st.sampled_from(self._lost_attempts()))
        model = self.model[number]
        trial = self.store.complete_trial(self.study, number, attempt, value)
        if model.state is TrialState.COMPLETED:  # another attempt's result counts: kept
            assert (trial.attempt, trial.value) == (model.attempt, model.value)
            return
        if model.state is TrialState.RUNNING:  # the attempt started in its place ends
            model.outcomes[model.attempt] = AttemptState.STOPPED
        model.state, model.attempt, model.doomed = TrialState.COMPLETED, attempt, False
        model.value = value
        model.outcomes[attempt] = AttemptState.COMPLETED
        assert (trial.state, trial.attempt, trial.value) == (TrialState.COMPLETED, attempt, value)

    @precondition(lambda self: self._lost_attempts())
    @rule(data=st.data(), doomed=st.booleans())
    def late_heartbeat(self, data: st.DataObject, doomed: bool) -> None:
        number, attempt = data.draw(st.sampled_from(self._lost_attempts()))
        model = self.model[number]
        lease = 0 if doomed else 600
        if model.state is TrialState.WAITING and model.attempt == attempt:
            trial = self.store.renew_lease(self.study, number, attempt, lease_seconds=lease)
            assert (trial.state, trial.attempt) == (TrialState.RUNNING, attempt)
            model.state, model.doomed = TrialState.RUNNING, doomed
            model.outcomes[attempt] = AttemptState.RUNNING
            return
        with pytest.raises(StaleAttemptError):
            self.store.renew_lease(self.study, number, attempt, lease_seconds=lease)

    @precondition(lambda self: self._lost_attempts())
    @rule(data=st.data(), step=st.integers(0, 3), acc=values)
    def late_measurement(self, data: st.DataObject, step: int, acc: float) -> None:
        number, attempt = data.draw(st.sampled_from(self._lost_attempts()))
        model = self.model[number]
        stored = self.steps.get((number, attempt), {})
        if model.state is TrialState.COMPLETED and step not in stored:
            with pytest.raises(StaleAttemptError):
                self.store.add_measurement(
                    self.study, number, attempt, step, {"a": acc}, late=True
                )
            return
        record = self.store.add_measurement(
            self.study, number, attempt, step, {"a": acc}, late=True
        )  # a step stored before is returned as it was (the first report of a step wins)
        stored = self.steps.setdefault((number, attempt), {})
        assert record.metrics == stored.setdefault(step, {"a": acc})

    @precondition(lambda self: self._lost_attempts())
    @rule(data=st.data(), stop=st.booleans())
    def late_failure(self, data: st.DataObject, stop: bool) -> None:
        number, attempt = data.draw(st.sampled_from(self._lost_attempts()))
        model = self.model[number]
        if stop:
            trial = self.store.stop_trial(self.study, number, attempt)
        else:
            trial = self.store.fail_trial(self.study, number, attempt, "late", retry=False)
        assert (trial.state, trial.attempt) == (model.state, model.attempt)  # acknowledged

    @precondition(lambda self: self._numbers(TrialState.COMPLETED))
    @rule(data=st.data(), other=values)
    def repeat_completion(self, data: st.DataObject, other: float) -> None:
        number = data.draw(st.sampled_from(self._numbers(TrialState.COMPLETED)))
        model = self.model[number]
        assert model.value is not None
        again = self.store.complete_trial(self.study, number, model.attempt, model.value)
        assert (again.state, again.value) == (TrialState.COMPLETED, model.value)
        if other != model.value:
            with pytest.raises(StaleAttemptError, match="already ended as COMPLETED"):
                self.store.complete_trial(self.study, number, model.attempt, other)

    @precondition(lambda self: any(t.attempt > 0 for t in self.model))
    @rule(data=st.data())
    def report_for_an_attempt_never_started(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from([n for n, t in enumerate(self.model) if t.attempt]))
        attempt = max(self.model[number].outcomes) + 1
        with pytest.raises(StaleAttemptError, match="does not exist"):
            self.store.complete_trial(self.study, number, attempt, 1.0)

    @rule()
    def expire(self) -> None:
        expired = self.store.expire_leases(self.study)
        doomed = [n for n, t in enumerate(self.model) if t.doomed]
        assert sorted(t.number for t in expired) == doomed
        for number in doomed:
            self._lose(number)
        for trial in expired:
            assert trial.state is self.model[trial.number].state

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def store_agrees_with_model(self) -> None:
        trials = self.store.list_trials(self.study)
        assert [(t.state, t.attempt) for t in trials] == [(m.state, m.attempt) for m in self.model]
        for trial, model in zip(trials, self.model, strict=True):
            assert (trial.lease_expires_at is not None) == (model.state is TrialState.RUNNING)
            if model.state is TrialState.COMPLETED:
                assert trial.value == model.value

    @invariant()
    def attempts_agree_with_model(self) -> None:
        for number, model in enumerate(self.model):
            if model.outcomes:
                attempts = self.store.list_attempts(self.study, number)
                assert {a.attempt: a.state for a in attempts} == model.outcomes

    @invariant()
    def counts_and_best_agree(self) -> None:
        counts = self.store.count_trials(self.study)
        assert sum(counts.values()) == len(self.model)
        for state in TrialState:
            assert counts[state] == len(self._numbers(state))
        completed = [(m.value, n) for n, m in enumerate(self.model) if m.value is not None]
        completed = [(v, n) for v, n in completed if self.model[n].state is TrialState.COMPLETED]
        sign = -1.0 if self.goal is Goal.MAXIMIZE else 1.0
        expected = [n for _, n in sorted(completed, key=lambda vn: (sign * vn[0], vn[1]))][:3]
        assert [t.number for t in self.store.best_trials(self.study, 3)] == expected


def _run(store: Store, examples: int, steps: int) -> None:
    class Machine(TrialLifecycle):
        pass

    Machine.store = store
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_trial_lifecycle_against_a_model(store: Store, storage_url: str) -> None:
    if storage_url.startswith("sqlite"):
        _run(store, examples=40, steps=30)
    else:  # every PostgreSQL commit waits for a disk flush: fewer, equally long runs
        _run(store, examples=12, steps=30)
