"""The oracle's in-memory mirror of one study, rebuilt from SQL (the truth) at any time.

Handing out a trial must cost one SQL write and no scan of the study, so the oracle keeps,
per study: the trial counts, the running trials and who holds them, the completed history
(with the search algorithm's kept state), a buffer of ready suggestions, and the caches
of the trials' measurements and lease renewals.  Every field is guarded by ``cond`` (the
caches by ``cache_lock``); the mirror changes through the methods below, which keep the
fields consistent with each other: :meth:`StudyMirror.resync` (from SQL),
:meth:`StudyMirror.record_start`, :meth:`StudyMirror.record_end`,
:meth:`StudyMirror.record_late_result`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from hpsearch.errors import NotFoundError
from hpsearch.records import MeasurementRecord, Study, StudyState, Trial, TrialState
from hpsearch.search import Algorithm, Observation, get_algorithm
from hpsearch.search.encoding import params_key
from hpsearch.space import Params, Rung, StudyConfig
from hpsearch.space.lifecycle import fit_to_space
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)

#: How long after a result a hand-out waits for suggestions that know it (see
#: StudyMirror.fresh_wait_left).
FRESH_WAIT_SECONDS = 2.0

#: An algorithm error pauses a study's suggestions this long.
SUGGEST_BACKOFF_SECONDS = 2.0
#: Nobody asked for this long: the study's suggestions are not refilled.
IDLE_SECONDS = 300.0


class StudyMirror:
    """The in-memory mirror of one study.  Guarded by ``cond``."""

    def __init__(self, study: Study) -> None:
        self.name = study.name
        self.study_id = study.id
        self.config = study.config
        self.state = study.state
        self.cond = threading.Condition(threading.Lock())
        self.algorithm: Algorithm = get_algorithm(study.config.algorithm)
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
        self.history: list[Observation] = []
        # FAILED trials' parameters: no result to learn from, but the search must not
        # propose them again (passed to it as busy points, see Suggester.refill).
        self.failed_params: list[Params] = []
        # What the algorithm keeps of the history (random search: the keys tried).
        self.search_state: Any = self.algorithm.initial_state()
        # A multi-fidelity study's slots (hpsearch.search.hyperband.Schedule), else None.
        self.schedule: Any = self.algorithm.new_schedule(study.config)
        self.completed_numbers: set[int] = set()  # COMPLETED trials, to count each once
        self.buffer: deque[Params] = deque()
        # The history's length when the oldest ready suggestion was computed, and when the
        # first result after that arrived (None: the buffer is up to date).
        self.buffer_history = 0
        self.behind_since: float | None = None
        self.reserved = 0  # slots taken by claims/inserts in flight (lock released)
        self.reserved_new = 0  # of which new trials (already counted in total)
        self.reserving: set[str] = set()  # workers with a claim/insert in flight
        self.cache_lock = threading.Lock()  # guards measured, renewed_at and curves
        # Completed trials' objective by step, for the median rule (None: not loaded yet).
        self.curves: dict[int, list[tuple[int, float]]] | None = None
        self.dirty = False  # a result arrived since the buffer was filled
        self.space_version = 0
        self.last_demand = time.monotonic()
        self.suggest_failed_at = 0.0
        seed = study.config.seed
        self.rng = np.random.default_rng(None if seed is None else [seed, study.id])

    # -- derived facts --------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state is not StudyState.ACTIVE

    @property
    def active(self) -> int:
        """Running trials, counting those being claimed or inserted right now."""
        return len(self.running) + self.reserved

    @property
    def exact_replay(self) -> bool:
        """A seeded study with a model-based algorithm replays exactly: the same sequence
        of asks and tells gets the same suggestions, whatever the timing of the fits.

        Each suggestion is then computed from the history and running trials of the moment
        it is handed out (one ready at a time, dropped when a trial ends or a retry starts),
        with a generator derived from the seed and those inputs.  The cost: an ask right
        after a hand-out or a result waits for its fit instead of taking one computed
        before.  An unseeded study keeps the fastest hand-out.  Multi-fidelity schedules
        decide by timing anyway and are left out."""
        return (
            self.config.seed is not None and self.algorithm.model_based and (self.schedule is None)
        )

    def replay_inputs(self) -> tuple[int, frozenset[object]]:
        """What an exact-replay suggestion is computed from: the history's length and the
        trials running, being inserted or ready (``cond`` held)."""
        pending = (*self.pending_params.values(), *self.in_flight, *self.buffer)
        return len(self.history), frozenset(params_key(p) for p in pending)

    @property
    def target(self) -> int:
        """How many ready suggestions to keep: many for cheap algorithms, few for model-based."""
        if self.exact_replay:
            return 1
        if not self.algorithm.model_based:
            # Cheap draws: keep many ready (a refill also copies the running trials' params).
            return min(1024, max(32, len(self.history) // 8))
        return max(1, min(self.config.budget.parallel_trials, 4))

    @property
    def low_water(self) -> int:
        return max(1, self.target // 2)

    @property
    def stale(self) -> bool:
        """The ready suggestions were computed before the latest result (model-based)."""
        return self.dirty and self.algorithm.model_based

    def fresh_wait_left(self) -> float:
        """Seconds a hand-out of a model-based study still waits for suggestions that know
        the latest results (0: hand out what is ready).

        A ready suggestion computed before the latest result is what a batch member would
        have been: handed out right after a result, a sequential study became a study
        with two trials in flight, one of them proposed without the last result.  A fit
        takes tens to hundreds of milliseconds, a trial minutes, so the hand-out waits for
        the refit, up to ``FRESH_WAIT_SECONDS`` after the result (a slow or failing fit
        then hands out what is ready).  An exactly replayed study drops what is ready on
        every result instead."""
        if (
            self.behind_since is None
            or not self.buffer
            or not self.algorithm.model_based
            or self.buffer_history >= len(self.history)
        ):
            return 0.0
        return max(0.0, self.behind_since + FRESH_WAIT_SECONDS - time.monotonic())

    def buffer_computed(self, known: int) -> None:
        """The suggester put suggestions computed from the first ``known`` entries of the
        history in the buffer, in place of what was there (``cond`` held)."""
        self.buffer_history = known
        if known >= len(self.history):
            self.behind_since = None

    def needs_suggestions(self) -> bool:
        ready = 0 if self.stale else len(self.buffer)  # a stale buffer is computed again
        if self.finished or self.total + ready >= self.config.budget.max_trials:
            return False
        if time.monotonic() - self.suggest_failed_at < SUGGEST_BACKOFF_SECONDS:
            return False  # back off after an algorithm error
        if time.monotonic() - self.last_demand > IDLE_SECONDS:
            return False  # nobody asked for a while: don't spend CPU on this study
        if len(self.buffer) < self.low_water:
            return True
        return self.stale

    # -- changes --------------------------------------------------------------------------
    def resync(self, store: Store, *, load_history: bool = False) -> None:
        """Rebuild the counts and the running set from SQL (the truth); with
        ``load_history`` also the completed history and the algorithm's kept state."""
        with self.cond:
            study = store.get_study(self.name)
            if study.id != self.study_id:  # deleted, and another study took the name
                raise NotFoundError(f"study {self.name!r} was deleted")
            counts = store.count_trials(self.name)
            running = store.list_trials(self.name, states=[TrialState.RUNNING])
            self.adopt(study)
            self.total = sum(counts.values()) + self.reserved_new  # inserts in flight
            self.waiting = counts.get(TrialState.WAITING, 0)
            self.completed = counts.get(TrialState.COMPLETED, 0)
            self.failed = counts.get(TrialState.FAILED, 0)
            self.stopped = counts.get(TrialState.STOPPED, 0)
            before = self.running.copy()
            self.trials = {t.number: t for t in running}
            self.running.clear()
            self.by_worker.clear()
            self.pending_params.clear()
            for trial in running:
                known = before.get(trial.number)
                fresh = known is not None and known[1] == trial.attempt and known[2]
                self._add_running(trial, fresh=fresh)
            with self.cache_lock:
                for cache in (self.measured, self.renewed_at):
                    for number in list(cache):
                        held = self.running.get(number)
                        if held is None or cache[number][0] != held[1]:
                            del cache[number]
            if load_history:
                ended = store.list_trials(
                    self.name,
                    states=[TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED],
                )
                self.failed_params = [t.params for t in ended if t.state is TrialState.FAILED]
                self.completed_numbers = {
                    t.number for t in ended if t.state is TrialState.COMPLETED
                }
                self.history = warm_start_history(store, self.config) + [
                    _observation(t, t.params) for t in ended if _teaches_search(t, self.config)
                ]
                self.search_state = self.algorithm.state_of(self.history)
                if self.schedule is not None:
                    self._replay_schedule(store)
            self.cond.notify_all()

    def adopt(self, study: Study) -> None:
        """Take the study's stored declaration and state (``cond`` held): a change made
        through the oracle, or one found in SQL (the CLI writes there directly).  A space
        that grew makes the ready suggestions stale."""
        if study.config.space != self.config.space:
            self.buffer.clear()
            self.space_version += 1
        self.config = study.config
        self.state = study.state
        self.cond.notify_all()

    def forget(self) -> None:
        """The study was deleted: asks held on it answer DONE (``cond`` held)."""
        self.state = StudyState.STOPPED
        self.buffer.clear()
        self.cond.notify_all()

    def record_start(self, trial: Trial) -> None:
        """A trial handed out by this chief (``cond`` held)."""
        if trial.attempt > 1 and self.exact_replay:
            self.buffer.clear()  # a retry runs again: what is ready did not count it
        self._add_running(trial, fresh=True)
        self.trials[trial.number] = trial
        with self.cache_lock:
            self.renewed_at[trial.number] = (trial.attempt, time.monotonic())

    def record_end(self, trial: Trial, attempt: int) -> bool:
        """Account for ``attempt`` of ``trial`` ending as ``trial`` says (``cond`` held).
        False when this chief does not hold that attempt (a repeated or late report)."""
        current = self.running.get(trial.number)
        if current is None or current[1] != attempt:
            return False
        if self.exact_replay:
            self.buffer.clear()  # computed while this trial ran: not what a replay gets
        self.forget_running(trial.number)
        self.trials.pop(trial.number, None)
        with self.cache_lock:
            measured = self.measured.pop(trial.number, None)
            if (
                trial.state is TrialState.COMPLETED
                and self.curves is not None
                and measured is not None
                and measured[0] == attempt
            ):
                name = self.config.metric.name
                self.curves[trial.number] = [
                    (step, r.metrics[name])
                    for step, r in sorted(measured[1].items())
                    if name in r.metrics
                ]
            self.renewed_at.pop(trial.number, None)
        params = self.pending_params.pop(trial.number, trial.params)
        if trial.state is TrialState.COMPLETED:
            self.completed_numbers.add(trial.number)
        if trial.state is TrialState.COMPLETED and _has_result(trial):
            self.completed += 1
            self._observe(trial, params)
        elif trial.state is TrialState.FAILED:
            self.failed += 1
            self.failed_params.append(params)
        elif trial.state is TrialState.WAITING:
            self.waiting += 1
        elif trial.state is TrialState.STOPPED:
            self.stopped += 1
            if _teaches_search(trial, self.config):
                self._observe(trial, params)
        log_trial(trial, self.name, event="ended", attempt=attempt)
        return True

    def counts_late_result(self, trial: Trial, attempt: int) -> bool:
        """Whether ``trial``, ended by ``attempt`` that this chief does not hold, is a late
        result that counted and is not in the history yet (``cond`` held)."""
        return (
            trial.state is TrialState.COMPLETED
            and trial.attempt == attempt
            and trial.number not in self.completed_numbers
        )

    def record_late_result(self, trial: Trial, attempt: int) -> None:
        """The history gains a late result (see :meth:`counts_late_result`); the counts
        and the running set must then be read again (:meth:`resync`)."""
        self.completed_numbers.add(trial.number)
        if _has_result(trial):
            self._observe(trial, trial.params)
        if self.exact_replay:
            self.buffer.clear()
        log_trial(trial, self.name, event="ended late", attempt=attempt)

    def forget_running(self, number: int) -> None:
        held = self.running.pop(number, None)
        if held is not None and held[0]:
            numbers = self.by_worker.get(held[0])
            if numbers is not None:
                numbers.discard(number)
                if not numbers:
                    del self.by_worker[held[0]]

    # -- helpers --------------------------------------------------------------------------
    def _add_running(self, trial: Trial, *, fresh: bool) -> None:
        self.running[trial.number] = (trial.worker_id, trial.attempt, fresh)
        if trial.worker_id:
            self.by_worker.setdefault(trial.worker_id, set()).add(trial.number)
        self.pending_params[trial.number] = trial.params

    def _observe(self, trial: Trial, params: Params) -> None:
        observation = _observation(trial, params)
        self.history.append(observation)
        if self.behind_since is None:
            self.behind_since = time.monotonic()
        self.algorithm.observe(self.search_state, observation)
        if self.schedule is not None and trial.value is not None:
            self.schedule.record(trial.number, trial.value)
        self.dirty = True

    def _replay_schedule(self, store: Store) -> None:
        """Rebuild the multi-fidelity schedule from every trial, in creation order."""
        self.schedule = self.algorithm.new_schedule(self.config)
        for trial in store.list_trials(self.name):
            rung = Rung.from_tags(trial.tags)
            if rung is not None:
                self.schedule.replay(rung, trial.number, trial.params)
            if trial.state is TrialState.COMPLETED and trial.value is not None:
                self.schedule.record(trial.number, trial.value)

    def taken_since(self, known: int) -> set[object]:
        """Keys of the parameters running, being inserted, or completed after the first
        ``known`` entries of the history (``cond`` held)."""
        return {
            params_key(p)
            for p in (
                *self.pending_params.values(),
                *self.in_flight,
                *(o.params for o in self.history[known:]),
            )
        }


def warm_start_history(store: Store, config: StudyConfig) -> list[Observation]:
    """The observations a study's ``warm_start`` gives its search: the completed trials of
    the other study (read now) whose parameters fit this study's space
    (:func:`hpsearch.space.lifecycle.fit_to_space`).  They come first in the history and
    are not trials of this study: they count against no budget and appear in no listing."""
    source = config.warm_start
    if source is None:
        return []
    try:
        other = store.get_study(source.study)
    except NotFoundError:
        logger.warning("warm start skipped: no study %r here study=%s", source.study, config.name)
        return []
    if other.config.metric != config.metric:
        logger.warning(
            "warm start skipped: study %r has another metric study=%s", source.study, config.name
        )
        return []
    observations, skipped = [], 0
    for trial in store.list_trials(source.study, states=[TrialState.COMPLETED]):
        params = fit_to_space(trial.params, config.space)
        if params is None or trial.value is None:
            skipped += 1
            continue
        if config.fidelity is None:
            observations.append(Observation(params, trial.value))
        else:  # a multi-fidelity study: the epochs the other trial trained, if it says
            observations.append(_observation(trial, params))
    logger.info(
        "warm start study=%s from=%s trials=%d skipped=%d",
        config.name,
        source.study,
        len(observations),
        skipped,
    )
    return observations


def _has_result(trial: Trial) -> bool:
    """Whether a COMPLETED trial teaches the search something: a value, or that its
    parameters are infeasible."""
    return trial.value is not None or not trial.feasible


def _teaches_search(trial: Trial, config: StudyConfig) -> bool:
    """Whether an ended trial belongs in the search's history.

    A trial stopped early (the median rule, a ``should_stop`` the worker obeyed) counts with
    the value it was stopped at, as Vertex AI Vizier counts an early-stopped trial's last
    measurement: it was stopped for looking worse than the others at that step, which is what
    the model must learn.  Left out, its parameters were neither observed nor pending, so the
    next suggestion came from the same model (and, in a seeded study, the same generator):
    a sequential study with the median rule proposed one stopped configuration forever.  A
    multi-fidelity trial stopped inside a rung is left out (its rung's budget was not spent,
    and the schedule counts rung results only), and so is one of a study with several
    objectives or constraints (a stopped trial keeps one value, not the metrics those need)."""
    if trial.state is TrialState.COMPLETED:
        return _has_result(trial)
    return (
        trial.state is TrialState.STOPPED
        and trial.value is not None
        and Rung.from_tags(trial.tags) is None
        and not config.multi_objective
        and not config.constraints
    )


def _observation(trial: Trial, params: Params) -> Observation:
    value = float("nan") if trial.value is None else trial.value
    rung = Rung.from_tags(trial.tags)
    if rung is None:
        return Observation(params, value, metrics=trial.metrics, feasible=trial.feasible)
    return Observation(params, value, rung.epochs, rung.initial_epoch)


def log_trial(trial: Trial, study: str, *, event: str, attempt: int | None = None) -> None:
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


__all__ = ["StudyMirror", "log_trial", "warm_start_history"]
