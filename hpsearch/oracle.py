"""The oracle: which worker runs which trial, leases, retries, budget and suggestions.

The oracle speaks Python, not gRPC: the service layer decodes a request, calls one method
here and encodes the answer.  The store is the truth; the oracle keeps a small in-memory
mirror per study (trial counts, running trials, the completed history, a buffer of ready
suggestions) so that handing out a trial costs one SQL write and no scan of the study.

Threads:
- RPC threads call :meth:`Oracle.ask`, :meth:`Oracle.heartbeat`, :meth:`Oracle.complete`...
  They take a study's own lock for short bookkeeping and never run a search algorithm.
- One suggester thread fills each study's suggestion buffer by calling
  :func:`hpsearch.search.suggest` with no lock held; it is woken when a buffer runs low
  or a result arrives.  In the chief, model fits (every algorithm but ``random``) run in
  a child process (:class:`_FitProcess`), so they do not hold the interpreter lock the
  RPC threads need.
- One sweeper thread expires lapsed leases (``store.expire_leases``) and re-syncs the
  mirror from SQL, so a lost trial goes back to WAITING and is handed to the next asker.

When no trial can be handed out yet, ``ask`` holds the caller on the study's condition
variable for a bounded time (woken when a trial finishes, a lease lapses or a suggestion
is ready) instead of answering "wait" at once: stock Keras Tuner workers re-ask instantly.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from hpsearch import search
from hpsearch.early_stopping import median_rule
from hpsearch.errors import InvalidArgumentError, StaleAttemptError
from hpsearch.records import (
    MeasurementRecord,
    Study,
    StudyState,
    StudySummary,
    Trial,
    TrialState,
)
from hpsearch.search.encoding import params_key
from hpsearch.space import Params, Space, StudyConfig, finite_metrics
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)

DEFAULT_HOLD_SECONDS = 3.0
MAX_HOLD_SECONDS = 30.0
MAX_TRIALS_PER_ASK = 64
MAX_STEP = 2**31 - 1  # the store's step column is a 32-bit integer
_CHEAP_ALGORITHMS = ("random",)


class AskStatus(str, Enum):
    """What :meth:`Oracle.ask` answers."""

    TRIALS = "TRIALS"  # the trials to run
    WAIT = "WAIT"  # nothing to run yet: ask again
    DONE = "DONE"  # the study is finished: the worker should exit


@dataclass(frozen=True, slots=True)
class AskResult:
    status: AskStatus
    trials: list[Trial] = field(default_factory=list)
    lease_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class LeaseAnswer:
    """The answer to a heartbeat or a measurement: the renewed trial and whether to stop."""

    trial: Trial | None  # None when the lease was not renewed by this call
    should_stop: bool = False
    reason: str = ""


class Oracle:
    """Schedules the trials of every study in one store.  Thread-safe.

    ``suggest_in_process=True`` runs model fits in a spawned child process
    (:class:`_FitProcess`; ``hpsearch chief`` does).  Spawning imports the program's main
    module in the child, so turn it on only where that module has an
    ``if __name__ == "__main__":`` guard; otherwise fits run on the suggester thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        sweep_seconds: float = 1.0,
        resync_seconds: float = 5.0,
        suggest_in_process: bool = False,
    ) -> None:
        self.store = store
        self._fits = _FitProcess() if suggest_in_process else None
        self.hold_seconds = hold_seconds
        self.sweep_seconds = sweep_seconds
        self.resync_seconds = resync_seconds
        self._studies: dict[str, _StudyRuntime] = {}
        self._registry_lock = threading.Lock()
        self._suggest_wakeup = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the suggester and the lease sweeper threads."""
        if self._threads:
            return
        self._stopping.clear()
        for target, name in (
            (self._suggest_loop, "hpsearch-suggester"),
            (self._sweep_loop, "hpsearch-sweeper"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background threads and release every held ``ask``."""
        self._stopping.set()
        self._suggest_wakeup.set()
        for runtime in list(self._studies.values()):
            with runtime.cond:
                runtime.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._fits is not None:
            self._fits.close()

    # -- studies --------------------------------------------------------------------------
    def create_study(self, config: StudyConfig, *, exist_ok: bool = False) -> Study:
        """Create a study (AlreadyExistsError if the name is taken, unless identical)."""
        study = self.store.create_study(config, exist_ok=exist_ok)
        logger.info(
            "study created study=%s algorithm=%s max_trials=%d parallel_trials=%d",
            study.name,
            config.algorithm,
            config.budget.max_trials,
            config.budget.parallel_trials,
        )
        return study

    def get_study(self, name: str) -> Study:
        return self.store.get_study(name)

    def list_studies(self) -> list[StudySummary]:
        return self.store.list_studies()

    def config(self, name: str) -> StudyConfig:
        """A study's declaration from the oracle's mirror (no SQL on the hot path)."""
        return self._runtime(name).config

    def update_space(self, name: str, space: Space) -> StudyConfig:
        """Add the parameters of ``space`` the study does not declare yet.

        Keras Tuner semantics: a parameter already declared keeps its declaration.
        Returns the study's declaration afterwards.
        """
        runtime = self._runtime(name)
        if all(p.name in runtime.config.space for p in space):
            return runtime.config
        with runtime.cond:
            study = self.store.get_study(name)
            current = study.config.space
            extra = tuple(p for p in space if p.name not in current)
            if not extra:
                return study.config
            study = self.store.update_space(name, Space(current.parameters + extra))
            runtime.config = study.config
            runtime.buffer.clear()
            runtime.space_version += 1
            runtime.cond.notify_all()
        logger.info("space updated study=%s added=%s", name, ",".join(p.name for p in extra))
        self._suggest_wakeup.set()
        return study.config

    # -- trials ---------------------------------------------------------------------------
    def ask(
        self,
        study: str,
        worker_id: str,
        count: int = 1,
        *,
        wait: float | None = None,
        lease_seconds: float | None = None,
        restarted: bool = False,
    ) -> AskResult:
        """Hand ``worker_id`` up to ``count`` trials of ``study`` to run.

        A worker that already holds running trials gets them back, unless ``restarted``:
        the caller runs one trial at a time and asks only once it has ended the last (a
        stock Keras Tuner worker), so a trial it still holds was abandoned by a restart:
        that attempt is ended as LOST (a result it still sends may count) and the trial
        is retried at once.  When nothing can be handed out yet the call is held up to
        ``wait`` seconds (default: the oracle's hold) and answers WAIT; once the budget is
        spent and every trial finished it answers DONE.  ``lease_seconds`` (default: the
        study's) is the lease of the attempts handed out.
        """
        if not worker_id:
            raise InvalidArgumentError("worker_id is empty; give each worker a stable id")
        if count < 1:
            raise InvalidArgumentError(f"count must be >= 1, got {count}")
        count = min(count, MAX_TRIALS_PER_ASK)
        hold = self.hold_seconds if wait is None else max(0.0, min(wait, MAX_HOLD_SECONDS))
        runtime = self._runtime(study)
        if restarted and runtime.by_worker.get(worker_id):
            self._abandon_held(runtime, worker_id)
        deadline = time.monotonic() + hold
        with runtime.cond:
            while True:
                runtime.last_demand = time.monotonic()
                if worker_id in runtime.reserving:  # a concurrent ask of this worker
                    runtime.cond.wait(max(0.0, deadline - time.monotonic()))
                    if time.monotonic() < deadline:
                        continue
                held = self._held_trials(runtime, worker_id)
                if held:
                    return AskResult(AskStatus.TRIALS, held, runtime.config.lease_seconds)
                if runtime.finished:
                    return AskResult(AskStatus.DONE)
                trials = self._hand_out(runtime, worker_id, count, lease_seconds)
                if trials:
                    return AskResult(AskStatus.TRIALS, trials, runtime.config.lease_seconds)
                if self._finish_if_done(runtime):
                    return AskResult(AskStatus.DONE)
                if runtime.needs_suggestions():
                    self._suggest_wakeup.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    return AskResult(AskStatus.WAIT)
                runtime.cond.wait(remaining)

    def heartbeat(
        self, study: str, number: int, attempt: int, *, lease_seconds: float | None = None
    ) -> LeaseAnswer:
        """Renew a running attempt's lease (``lease_seconds``, default: the study's).

        An attempt whose lease expired while its trial still waits for the retry is
        revived; StaleAttemptError once another attempt started or the trial finished.
        """
        runtime = self._runtime(study)
        lease = runtime.config.lease_seconds if lease_seconds is None else lease_seconds
        trial = self.store.renew_lease(study, number, attempt, lease_seconds=lease)
        self._note_renewal(runtime, trial, attempt)
        return self._lease_answer(runtime, trial)

    def report(
        self,
        study: str,
        number: int,
        attempt: int,
        step: int,
        metrics: Mapping[str, float],
        *,
        lease_seconds: float | None = None,
        late: bool = False,
    ) -> LeaseAnswer:
        """Record an intermediate measurement (it also renews the lease).

        ``late``: keep the measurement of an attempt that was given up on while its trial
        is not completed (its result may still count, see :meth:`complete`) instead of
        raising StaleAttemptError; the answer then carries no renewed trial.
        """
        runtime = self._runtime(study)
        clean = finite_metrics(metrics, where=f"trial {number} step {step}")
        if not 0 <= step <= MAX_STEP:  # checked before the lease is renewed: no write
            raise InvalidArgumentError(f"step must be in [0, {MAX_STEP}], got {step}")
        lease = runtime.config.lease_seconds if lease_seconds is None else lease_seconds
        with runtime.cache_lock:
            renewed = runtime.renewed_at.get(number)
        if renewed is None or time.monotonic() - renewed[1] > lease / 4 or renewed[0] != attempt:
            try:
                trial: Trial | None = self.store.renew_lease(
                    study, number, attempt, lease_seconds=lease
                )
            except StaleAttemptError:
                if not late:
                    raise
                trial = None
            if trial is not None:
                self._note_renewal(runtime, trial, attempt)
            record = self.store.add_measurement(study, number, attempt, step, clean, late=late)
        else:
            # Renewed moments ago: the measurement alone (the store still refuses a stale
            # attempt) saves a write per report.
            record = self.store.add_measurement(study, number, attempt, step, clean)
            trial = None
        with runtime.cache_lock:
            cached = runtime.measured.get(number)
            if cached is None or cached[0] != attempt:
                cached = runtime.measured[number] = (attempt, {})
            cached[1].setdefault(record.step, record)
        stop, reason = self._stop_reason(runtime)
        if not stop:
            stop, reason = self._median_rule(runtime, number, attempt, step)
        if stop:
            logger.info(
                "trial should stop study=%s number=%d attempt=%d step=%d reason=%r",
                study,
                number,
                attempt,
                step,
                reason,
            )
        return LeaseAnswer(trial, stop, reason)

    def complete(
        self,
        study: str,
        number: int,
        attempt: int,
        *,
        value: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> Trial:
        """Finish an attempt as COMPLETED.  Idempotent.

        Without ``value`` the objective is the study metric in ``metrics``, else taken from
        the attempt's intermediate measurements under the study's ``measurement`` rule.
        A late result (its attempt was given up on: the lease expired, or the worker
        restarted) still counts when no other attempt completed the trial; an attempt
        started in its place is ended as STOPPED.  When another attempt completed it, the
        stored trial is returned unchanged (its ``attempt`` says whose result counts).
        """
        runtime = self._runtime(study)
        config = runtime.config
        clean = finite_metrics(metrics or {}, where=f"trial {number}")
        if value is None:
            value = clean.get(config.metric.name)
        if value is None:
            value = self._value_from_measurements(config, study, number, attempt)
        if value is None:
            raise InvalidArgumentError(
                f"trial {number}: the study metric {config.metric.name!r} was not reported "
                f"(got {sorted(clean) or 'no metrics'}); report it or pass value"
            )
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise InvalidArgumentError(
                f"trial {number}: the objective value must be a finite number, got {value!r}"
            )
        clean.setdefault(config.metric.name, float(value))
        trial = self.store.complete_trial(study, number, attempt, float(value), clean)
        self._after_end(runtime, trial, attempt)
        return trial

    def fail(
        self, study: str, number: int, attempt: int, message: str, *, retry: bool = False
    ) -> Trial:
        """Finish an attempt as FAILED; with ``retry`` it gets another attempt if allowed."""
        runtime = self._runtime(study)
        trial = self.store.fail_trial(
            study, number, attempt, message or "failed (no message)", retry=retry
        )
        self._after_end(runtime, trial, attempt)
        return trial

    def stop_trial(
        self, study: str, number: int, attempt: int, *, value: float | None = None
    ) -> Trial:
        """Finish an attempt as STOPPED (early stopping or study stopped)."""
        runtime = self._runtime(study)
        if value is not None and not math.isfinite(value):
            raise InvalidArgumentError(f"trial {number}: value must be finite, got {value!r}")
        trial = self.store.stop_trial(study, number, attempt, value=value)
        self._after_end(runtime, trial, attempt)
        return trial

    def get_trial(self, study: str, number: int, *, exact: bool = True) -> Trial:
        """A trial from SQL; with ``exact=False`` a running trial handed out by this chief
        comes from memory (its lease expiry may be a little behind)."""
        if not exact:
            runtime = self._runtime(study)
            trial = runtime.trials.get(number)
            if trial is not None:
                return trial
        return self.store.get_trial(study, number)

    def list_trials(
        self,
        study: str,
        *,
        states: Sequence[TrialState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Trial]:
        return self.store.list_trials(study, states=states, offset=offset, limit=limit)

    def best_trials(self, study: str, n: int = 1) -> list[Trial]:
        return self.store.best_trials(study, n)

    def measurements(self, study: str, number: int, attempt: int) -> list[MeasurementRecord]:
        """The intermediate measurements of one attempt, by step."""
        runtime = self._runtime(study)
        with runtime.cache_lock:
            cached = runtime.measured.get(number)
            if cached is not None and cached[0] == attempt and number in runtime.running:
                return [cached[1][step] for step in sorted(cached[1])]
            running = runtime.running.get(number)
            if running is not None and running[1] == attempt and running[2]:
                return []  # handed out by this chief and nothing reported yet
        return [m for m in self.store.list_measurements(study, number) if m.attempt == attempt]

    def sweep(self) -> list[Trial]:
        """Expire lapsed leases now (the sweeper thread calls this every second)."""
        changed = self.store.expire_leases()
        names = {trial.study_id: self._name_of(trial) for trial in changed}
        for trial in changed:
            _log_trial(trial, names[trial.study_id], event="lease expired")
        for name in set(names.values()):
            runtime = self._studies.get(name)
            if runtime is not None:
                self._resync(runtime)
        return changed

    # -- scheduling (called with runtime.cond held) ---------------------------------------
    def _held_trials(self, runtime: _StudyRuntime, worker_id: str) -> list[Trial]:
        numbers = runtime.by_worker.get(worker_id)
        if not numbers:
            return []
        held = []
        for number in sorted(numbers):
            trial = self.store.get_trial(runtime.name, number)
            if trial.state is TrialState.RUNNING and trial.worker_id == worker_id:
                held.append(trial)
            else:
                runtime.forget_running(number)
        return held

    def _hand_out(
        self, runtime: _StudyRuntime, worker_id: str, count: int, lease: float | None
    ) -> list[Trial]:
        """Claim a WAITING trial or create one from the buffer, up to the limits.

        Called with the study's lock held; the lock is released around each SQL write
        (the slot is reserved first), so other calls of the study are not held up by it.
        """
        budget = runtime.config.budget
        lease = runtime.config.lease_seconds if lease is None else lease
        trials: list[Trial] = []
        while len(trials) < count and runtime.active < budget.parallel_trials:
            params: Params | None = None
            if runtime.waiting > 0:
                runtime.waiting -= 1
            elif runtime.total < budget.max_trials and runtime.buffer:
                params = runtime.buffer.popleft()
                runtime.total += 1
                runtime.reserved_new += 1
            else:
                break
            runtime.reserved += 1
            runtime.reserving.add(worker_id)
            if params is not None:
                runtime.in_flight.append(params)  # not in the buffer nor pending any more
            trial: Trial | None = None
            runtime.cond.release()
            try:
                if params is None:
                    trial = self.store.claim_trial(runtime.name, worker_id, lease_seconds=lease)
                else:
                    trial = self.store.create_trial(
                        runtime.name, params, worker_id=worker_id, lease_seconds=lease
                    )
            finally:
                runtime.cond.acquire()
                runtime.reserved -= 1
                runtime.reserving.discard(worker_id)
                if params is not None:
                    runtime.in_flight.remove(params)
                    runtime.reserved_new -= 1
                    if trial is None:  # the insert failed: give the slot back
                        runtime.total -= 1
                        runtime.buffer.appendleft(params)
                runtime.cond.notify_all()
            if trial is None:
                runtime.waiting = 0  # nothing was WAITING after all
                continue
            runtime.add_running(trial, fresh=True)
            runtime.trials[trial.number] = trial
            with runtime.cache_lock:
                runtime.renewed_at[trial.number] = (trial.attempt, time.monotonic())
            runtime.pending_params[trial.number] = trial.params
            _log_trial(trial, runtime.name, event="started")
            trials.append(trial)
        if len(runtime.buffer) < runtime.low_water:
            self._suggest_wakeup.set()
        return trials

    def _abandon_held(self, runtime: _StudyRuntime, worker_id: str) -> None:
        """End the attempts ``worker_id`` holds as LOST: it asked for a trial again, so it
        restarted (see :meth:`ask`); each trial is retried as its next attempt."""
        with runtime.cond:
            held = [(n, runtime.running[n][1]) for n in runtime.by_worker.get(worker_id, ())]
        for number, attempt in held:
            try:
                trial = self.store.fail_trial(
                    runtime.name,
                    number,
                    attempt,
                    f"worker {worker_id} asked for a new trial while holding this one: it "
                    "restarted",
                    retry=True,
                    lost=True,
                )
            except StaleAttemptError:  # it ended meanwhile: the mirror was behind
                self._resync(runtime)
                continue
            logger.info(
                "attempt given up: its worker restarted study=%s number=%d attempt=%d "
                "worker=%s state=%s",
                runtime.name,
                number,
                attempt,
                worker_id,
                trial.state.value,
            )
            self._after_end(runtime, trial, attempt)

    def _note_renewal(self, runtime: _StudyRuntime, trial: Trial, attempt: int) -> None:
        with runtime.cache_lock:
            runtime.renewed_at[trial.number] = (attempt, time.monotonic())
        held = runtime.running.get(trial.number)
        if held is None or held[1] != attempt:
            self._resync(runtime)  # a lost attempt revived by its heartbeat

    def _finish_if_done(self, runtime: _StudyRuntime) -> bool:
        budget = runtime.config.budget
        reason = None
        if budget.max_failed_trials is not None and runtime.failed >= budget.max_failed_trials:
            reason = f"max_failed_trials={budget.max_failed_trials} reached"
        elif runtime.total >= budget.max_trials and not runtime.active and runtime.waiting == 0:
            reason = f"max_trials={budget.max_trials} done"
        if reason is None:
            return False
        if not runtime.finished:
            self.store.set_study_state(runtime.name, StudyState.COMPLETED)
            runtime.state = StudyState.COMPLETED
            runtime.buffer.clear()
            logger.info(
                "study finished study=%s reason=%r completed=%d failed=%d",
                runtime.name,
                reason,
                runtime.completed,
                runtime.failed,
            )
            runtime.cond.notify_all()
        return True

    def _after_end(self, runtime: _StudyRuntime, trial: Trial, attempt: int) -> None:
        with runtime.cond:
            current = runtime.running.get(trial.number)
            if current is None or current[1] != attempt:
                counted = (
                    trial.state is TrialState.COMPLETED
                    and trial.attempt == attempt
                    and trial.number not in runtime.completed_numbers
                )
                if counted:
                    self._count_late_result(runtime, trial, attempt)
                return  # else a repeated or acknowledged report: already accounted for
            runtime.forget_running(trial.number)
            runtime.trials.pop(trial.number, None)
            with runtime.cache_lock:
                measured = runtime.measured.pop(trial.number, None)
                if (
                    trial.state is TrialState.COMPLETED
                    and runtime.curves is not None
                    and measured is not None
                    and measured[0] == attempt
                ):
                    name = runtime.config.metric.name
                    runtime.curves[trial.number] = [
                        (step, r.metrics[name])
                        for step, r in sorted(measured[1].items())
                        if name in r.metrics
                    ]
                runtime.renewed_at.pop(trial.number, None)
            params = runtime.pending_params.pop(trial.number, trial.params)
            if trial.state is TrialState.COMPLETED:
                runtime.completed_numbers.add(trial.number)
            if trial.state is TrialState.COMPLETED and trial.value is not None:
                runtime.completed += 1
                runtime.history.append(search.Observation(params, trial.value))
                if runtime.history_keys is not None:
                    runtime.history_keys.add(params_key(params))
                runtime.dirty = True
            elif trial.state is TrialState.FAILED:
                runtime.failed += 1
            elif trial.state is TrialState.WAITING:
                runtime.waiting += 1
            elif trial.state is TrialState.STOPPED:
                runtime.stopped += 1
            _log_trial(trial, runtime.name, event="ended", attempt=attempt)
            self._finish_if_done(runtime)
            runtime.cond.notify_all()
        if runtime.dirty and runtime.config.algorithm not in _CHEAP_ALGORITHMS:
            self._suggest_wakeup.set()

    def _count_late_result(self, runtime: _StudyRuntime, trial: Trial, attempt: int) -> None:
        """A late result counted (its attempt had been given up on, see :meth:`complete`):
        the history gains the trial; the counts and the running set (an attempt started in
        its place was ended) come from SQL again.  Called with ``runtime.cond`` held."""
        runtime.completed_numbers.add(trial.number)
        if trial.value is not None:
            runtime.history.append(search.Observation(trial.params, trial.value))
            if runtime.history_keys is not None:
                runtime.history_keys.add(params_key(trial.params))
        runtime.dirty = True
        _log_trial(trial, runtime.name, event="ended late", attempt=attempt)
        runtime.cond.release()
        try:
            self._resync(runtime)
        finally:
            runtime.cond.acquire()
        self._finish_if_done(runtime)
        runtime.cond.notify_all()
        self._suggest_wakeup.set()

    def _lease_answer(self, runtime: _StudyRuntime, trial: Trial) -> LeaseAnswer:
        return LeaseAnswer(trial, *self._stop_reason(runtime))

    def _median_rule(
        self, runtime: _StudyRuntime, number: int, attempt: int, step: int
    ) -> tuple[bool, str]:
        """The study's early-stopping rule (:mod:`hpsearch.early_stopping`) for one report."""
        rule = runtime.config.early_stopping
        metric = runtime.config.metric
        if rule.rule != "median" or step < rule.min_steps:
            return False, ""
        with runtime.cache_lock:
            cached = runtime.measured.get(number)
            mine = (
                [
                    (s, r.metrics[metric.name])
                    for s, r in cached[1].items()
                    if s <= step and metric.name in r.metrics
                ]
                if cached is not None and cached[0] == attempt
                else []
            )
        decision = median_rule(
            mine,
            list(self._curves(runtime).values()),
            metric.goal,
            min_trials=rule.min_trials,
            min_steps=rule.min_steps,
        )
        return decision.stop, decision.reason

    def _curves(self, runtime: _StudyRuntime) -> dict[int, list[tuple[int, float]]]:
        """The completed trials' objective by step (loaded from SQL once, then kept)."""
        if runtime.curves is None:
            name = runtime.config.metric.name
            completed = {
                t.number: t.attempt
                for t in self.store.list_trials(runtime.name, states=[TrialState.COMPLETED])
            }
            curves: dict[int, list[tuple[int, float]]] = {}
            for m in self.store.list_measurements(runtime.name):
                if completed.get(m.trial_number) == m.attempt and name in m.metrics:
                    curves.setdefault(m.trial_number, []).append((m.step, m.metrics[name]))
            with runtime.cache_lock:
                if runtime.curves is None:
                    runtime.curves = curves
        return runtime.curves

    def _stop_reason(self, runtime: _StudyRuntime) -> tuple[bool, str]:
        if runtime.state is StudyState.STOPPED:
            return True, "the study was stopped"
        return False, ""

    def _value_from_measurements(
        self, config: StudyConfig, study: str, number: int, attempt: int
    ) -> float | None:
        values = [
            m.metrics[config.metric.name]
            for m in self.measurements(study, number, attempt)
            if config.metric.name in m.metrics
        ]
        return config.measurement.select(values, config.metric.goal)

    # -- the study mirror -----------------------------------------------------------------
    def _runtime(self, name: str) -> _StudyRuntime:
        runtime = self._studies.get(name)
        if runtime is not None:
            return runtime
        with self._registry_lock:
            runtime = self._studies.get(name)
            if runtime is None:
                study = self.store.get_study(name)  # NotFoundError for an unknown study
                runtime = _StudyRuntime(study)
                self._resync(runtime, load_history=True)
                self._studies[name] = runtime
                self._suggest_wakeup.set()
        return runtime

    def _resync(self, runtime: _StudyRuntime, *, load_history: bool = False) -> None:
        """Rebuild the mirror's counts and running set from SQL (the truth)."""
        with runtime.cond:
            study = self.store.get_study(runtime.name)
            counts = self.store.count_trials(runtime.name)
            running = self.store.list_trials(runtime.name, states=[TrialState.RUNNING])
            runtime.config = study.config
            runtime.state = study.state
            runtime.total = sum(counts.values()) + runtime.reserved_new  # inserts in flight
            runtime.waiting = counts.get(TrialState.WAITING, 0)
            runtime.completed = counts.get(TrialState.COMPLETED, 0)
            runtime.failed = counts.get(TrialState.FAILED, 0)
            runtime.stopped = counts.get(TrialState.STOPPED, 0)
            before = runtime.running.copy()
            runtime.trials = {t.number: t for t in running}
            runtime.running.clear()
            runtime.by_worker.clear()
            runtime.pending_params.clear()
            for trial in running:
                known = before.get(trial.number)
                fresh = known is not None and known[1] == trial.attempt and known[2]
                runtime.add_running(trial, fresh=fresh)
                runtime.pending_params[trial.number] = trial.params
            with runtime.cache_lock:
                for cache in (runtime.measured, runtime.renewed_at):
                    for number in list(cache):
                        held = runtime.running.get(number)
                        if held is None or cache[number][0] != held[1]:
                            del cache[number]
            if load_history:
                completed = self.store.list_trials(runtime.name, states=[TrialState.COMPLETED])
                runtime.completed_numbers = {t.number for t in completed}
                runtime.history = [
                    search.Observation(t.params, t.value) for t in completed if t.value is not None
                ]
                if runtime.history_keys is not None:
                    runtime.history_keys = {params_key(o.params) for o in runtime.history}
            runtime.cond.notify_all()

    def _name_of(self, trial: Trial) -> str:
        for name, runtime in self._studies.items():
            if runtime.study_id == trial.study_id:
                return name
        return ""

    # -- background threads ---------------------------------------------------------------
    def _suggest_loop(self) -> None:
        while not self._stopping.is_set():
            self._suggest_wakeup.wait(1.0)
            self._suggest_wakeup.clear()
            if self._stopping.is_set():
                return
            for runtime in list(self._studies.values()):
                try:
                    self._refill(runtime)
                except Exception:  # a broken algorithm must not kill the chief
                    logger.exception("suggestion failed study=%s", runtime.name)
                    runtime.suggest_failed_at = time.monotonic()

    def _refill(self, runtime: _StudyRuntime) -> None:
        with runtime.cond:
            if not runtime.needs_suggestions():
                return
            config = runtime.config
            refresh = runtime.dirty and config.algorithm not in _CHEAP_ALGORITHMS
            kept = [] if refresh else list(runtime.buffer)
            room = config.budget.max_trials - runtime.total
            n = min(runtime.target - len(kept), room - len(kept))
            if n <= 0:
                return
            # Random search reads the keys kept of the history (a live set, only ever
            # added to), not a copy of the history: O(n) per refill, not O(study size).
            seen = runtime.history_keys if config.algorithm == "random" else None
            history = [] if seen is not None else list(runtime.history)
            known = len(runtime.history)
            pending = list(runtime.pending_params.values()) + runtime.in_flight + kept
            version = runtime.space_version
            runtime.dirty = False
        started = time.perf_counter()
        if self._fits is not None and config.algorithm not in _CHEAP_ALGORITHMS:
            proposals, runtime.rng = self._fits.suggest(config, history, pending, n, runtime.rng)
        else:
            proposals = search.suggest(config, history, pending, n, runtime.rng, seen or ())
        elapsed = time.perf_counter() - started
        valid = [config.space.validate(p) for p in proposals]
        with runtime.cond:
            if runtime.space_version != version:
                return  # the space changed while computing: these are stale
            # Trials handed out while this ran were not in ``pending``: a deterministic
            # design (a Sobol point) could propose one of them again.
            taken = {
                params_key(p)
                for p in (
                    *runtime.pending_params.values(),
                    *runtime.in_flight,
                    *(o.params for o in runtime.history[known:]),
                )
            }
            if taken:
                valid = [p for p in valid if params_key(p) not in taken]
            if refresh:
                runtime.buffer = deque(valid)
            else:
                runtime.buffer.extend(valid)
            runtime.cond.notify_all()
        logger.debug(
            "suggestions ready study=%s n=%d history=%d seconds=%.3f",
            runtime.name,
            len(valid),
            known,
            elapsed,
        )

    def _sweep_loop(self) -> None:
        last_resync = time.monotonic()
        while not self._stopping.wait(self.sweep_seconds):
            try:
                self.sweep()
                if time.monotonic() - last_resync >= self.resync_seconds:
                    last_resync = time.monotonic()
                    for runtime in list(self._studies.values()):
                        self._resync(runtime)
            except Exception:  # keep sweeping through a database hiccup
                logger.exception("lease sweep failed")


def _suggest_remote(
    config: StudyConfig,
    history: list[search.Observation],
    pending: list[Params],
    n: int,
    rng: np.random.Generator,
) -> tuple[list[Params], np.random.Generator]:
    """:func:`hpsearch.search.suggest`, in the fit process (or in-thread as its fallback);
    the generator comes back advanced, so a seeded study draws the same suggestions."""
    return search.suggest(config, history, pending, n, rng), rng


class _FitProcess:
    """Model fits (Bayesian suggestions) in a child process of the chief.

    The suggester thread already keeps fits off the RPC threads, but a fit is mostly
    Python and NumPy holding the interpreter lock, so in a thread it still delays every
    RPC by a few lock hand-overs.  One child process (``spawn``: the chief runs gRPC
    threads, which must not be forked) runs them instead; it starts at the first fit.  If
    it dies, the fit runs in-thread once and the next one starts a new child.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._disabled = False

    def suggest(
        self,
        config: StudyConfig,
        history: list[search.Observation],
        pending: list[Params],
        n: int,
        rng: np.random.Generator,
    ) -> tuple[list[Params], np.random.Generator]:
        with self._lock:
            if self._pool is None and not self._disabled:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            pool = self._pool
        if pool is not None:
            try:
                future = pool.submit(_suggest_remote, config, history, pending, n, rng)
            except Exception as error:  # no process can start (e.g. an unguarded __main__)
                logger.warning("fits run in the chief's own process: no fit process (%s)", error)
                self._drop(pool, disable=True)
            else:
                try:
                    return future.result()  # an error of the algorithm itself is raised
                except BrokenProcessPool:
                    logger.warning(
                        "fit process died; this fit runs in the chief, the next in a new one"
                    )
                    self._drop(pool)
        return _suggest_remote(config, history, pending, n, rng)  # here, in this thread

    def _drop(self, pool: ProcessPoolExecutor, *, disable: bool = False) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
            self._disabled = self._disabled or disable
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _StudyRuntime:
    """The in-memory mirror of one study.  Guarded by ``cond``."""

    def __init__(self, study: Study) -> None:
        self.name = study.name
        self.study_id = study.id
        self.config = study.config
        self.state = study.state
        self.cond = threading.Condition(threading.Lock())
        self.total = 0
        self.waiting = 0
        self.completed = 0
        self.failed = 0
        self.stopped = 0
        # number -> (worker, attempt, handed out by this chief since it started)
        self.running: dict[int, tuple[str | None, int, bool]] = {}
        # number -> (attempt, step -> measurement) of running attempts, as reported here
        self.measured: dict[int, tuple[int, dict[int, MeasurementRecord]]] = {}
        # number -> (attempt, monotonic time of the last lease renewal)
        self.renewed_at: dict[int, tuple[int, float]] = {}
        self.by_worker: dict[str, set[int]] = {}
        self.pending_params: dict[int, Params] = {}
        self.in_flight: list[Params] = []  # taken from the buffer, trial insert under way
        self.trials: dict[int, Trial] = {}  # running trials as handed out
        self.history: list[search.Observation] = []
        self.completed_numbers: set[int] = set()  # COMPLETED trials, to count each once
        # params_key of each entry of history, for random search (None for the others).
        self.history_keys: set[object] | None = (
            set() if study.config.algorithm == "random" else None
        )
        self.buffer: deque[Params] = deque()
        self.reserved = 0  # slots taken by claims/inserts in flight (lock released)
        self.reserved_new = 0  # of which new trials (already counted in total)
        self.reserving: set[str] = set()  # workers with a claim/insert in flight
        self.cache_lock = threading.Lock()  # guards measured, renewed_at and curves
        # Completed trials' objective by step, for the median rule (None: not loaded yet).
        self.curves: dict[int, list[tuple[int, float]]] | None = None
        self.dirty = False
        self.space_version = 0
        self.last_demand = time.monotonic()
        self.suggest_failed_at = 0.0
        seed = study.config.seed
        self.rng = np.random.default_rng(None if seed is None else [seed, study.id])

    @property
    def finished(self) -> bool:
        return self.state is not StudyState.ACTIVE

    @property
    def active(self) -> int:
        """Running trials, counting those being claimed or inserted right now."""
        return len(self.running) + self.reserved

    @property
    def target(self) -> int:
        """How many ready suggestions to keep: many for cheap algorithms, few for model-based."""
        if self.config.algorithm in _CHEAP_ALGORITHMS:
            # Cheap draws: keep many ready (a refill also copies the running trials' params).
            return min(1024, max(32, len(self.history) // 8))
        return max(1, min(self.config.budget.parallel_trials, 4))

    @property
    def low_water(self) -> int:
        return max(1, self.target // 2)

    def needs_suggestions(self) -> bool:
        if self.finished or self.total + len(self.buffer) >= self.config.budget.max_trials:
            return False
        if time.monotonic() - self.suggest_failed_at < 2.0:
            return False  # back off after an algorithm error
        if time.monotonic() - self.last_demand > 300:
            return False  # nobody asked for a while: don't spend CPU on this study
        if len(self.buffer) < self.low_water:
            return True
        return self.dirty and self.config.algorithm not in _CHEAP_ALGORITHMS

    def add_running(self, trial: Trial, *, fresh: bool = False) -> None:
        self.running[trial.number] = (trial.worker_id, trial.attempt, fresh)
        if trial.worker_id:
            self.by_worker.setdefault(trial.worker_id, set()).add(trial.number)

    def forget_running(self, number: int) -> None:
        held = self.running.pop(number, None)
        if held is not None and held[0]:
            numbers = self.by_worker.get(held[0])
            if numbers is not None:
                numbers.discard(number)
                if not numbers:
                    del self.by_worker[held[0]]


def _log_trial(trial: Trial, study: str, *, event: str, attempt: int | None = None) -> None:
    logger.info(
        "trial %s study=%s number=%d attempt=%d state=%s worker=%s value=%s",
        event,
        study,
        trial.number,
        trial.attempt if attempt is None else attempt,
        trial.state.value,
        trial.worker_id,
        trial.value,
    )


__all__ = ["AskResult", "AskStatus", "LeaseAnswer", "Oracle"]
