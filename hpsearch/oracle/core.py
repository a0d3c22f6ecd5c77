"""The oracle's public API: studies, trials, leases, results (see the package docstring)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence

from hpsearch.errors import (
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
    StorageError,
)
from hpsearch.oracle.answers import AskResult, LeaseAnswer
from hpsearch.oracle.mirror import StudyMirror, log_trial
from hpsearch.oracle.scheduler import Scheduler
from hpsearch.oracle.stopping import Stopping
from hpsearch.oracle.suggester import Suggester
from hpsearch.records import (
    Annotations,
    MeasurementRecord,
    Study,
    StudySummary,
    Trial,
    TrialState,
)
from hpsearch.space import Measurement, Metric, Space, StudyConfig, finite_metrics
from hpsearch.space.lifecycle import StudyChange
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)

DEFAULT_HOLD_SECONDS = 3.0
MAX_HOLD_SECONDS = 30.0
MAX_TRIALS_PER_ASK = 64
MAX_STEP = 2**31 - 1  # the store's step column is a 32-bit integer


class Oracle:
    """Schedules the trials of every study in one store.  Thread-safe.

    ``suggest_in_process=True`` runs model fits in a spawned child process
    (:class:`~hpsearch.oracle.suggester.FitProcess`; ``hpsearch chief`` does).
    Spawning imports the program's main module in the child, so turn it on only where
    that module has an ``if __name__ == "__main__":`` guard; otherwise fits run on the
    suggester thread.
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
        self.hold_seconds = hold_seconds
        self.sweep_seconds = sweep_seconds
        self.resync_seconds = resync_seconds
        self._studies: dict[str, StudyMirror] = {}
        self._registry_lock = threading.Lock()
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._suggester = Suggester(
            lambda: list(self._studies.values()), fit_process=suggest_in_process
        )
        self._scheduler = Scheduler(
            store, wake_suggester=self._suggester.wake, stopping=self._stopping.is_set
        )
        self._stopping_rules = Stopping(store)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the suggester and the lease sweeper threads."""
        if self._sweeper is not None:
            return
        self._stopping.clear()
        self._suggester.start()
        self._sweeper = threading.Thread(
            target=self._sweep_loop, name="hpsearch-sweeper", daemon=True
        )
        self._sweeper.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background threads and release every held ``ask``."""
        self._stopping.set()
        for mirror in list(self._studies.values()):
            with mirror.cond:
                mirror.cond.notify_all()
        self._suggester.stop(timeout)
        if self._sweeper is not None:
            self._sweeper.join(timeout)
            self._sweeper = None

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
        return self._mirror(name).config

    def update_space(self, name: str, space: Space) -> StudyConfig:
        """Add the parameters of ``space`` the study does not declare yet.

        Keras Tuner semantics: a parameter already declared keeps its declaration.
        Returns the study's declaration afterwards.
        """
        mirror = self._mirror(name)
        if all(p.name in mirror.config.space for p in space):
            return mirror.config
        with mirror.cond:
            study = self.store.get_study(name)
            current = study.config.space
            extra = tuple(p for p in space if p.name not in current)
            if not extra:
                return study.config
            study = self.store.update_space(name, Space(current.parameters + extra))
            mirror.config = study.config
            mirror.buffer.clear()
            mirror.space_version += 1
            mirror.cond.notify_all()
        logger.info("space updated study=%s added=%s", name, ",".join(p.name for p in extra))
        self._suggester.wake()
        return study.config

    # -- the study life cycle (see the README's "Study life cycle") ------------------------
    def stop_study(self, name: str) -> Study:
        """Stop a study: asks answer DONE (Keras Tuner workers: STOPPED), running trials
        are told to stop at their next heartbeat or report."""
        study = self.store.stop_study(name)
        self._adopt(study)
        return study

    def resume_study(self, name: str) -> Study:
        """A stopped study runs again (a completed one needs a larger budget instead)."""
        study = self.store.resume_study(name)
        self._adopt(study)
        return study

    def update_study(self, name: str, config: StudyConfig) -> tuple[Study, list[StudyChange]]:
        """Apply the safe changes of ``config`` (:meth:`hpsearch.store.Store.update_study`);
        the study's mirror takes them at once."""
        study, changes = self.store.update_study(name, config)
        if changes:
            self._adopt(study)
        return study, changes

    def delete_study(self, name: str, *, force: bool = False) -> int:
        """Delete a study and everything in it; returns how many trials went.  Refused
        while trials run unless ``force``."""
        trials = self.store.delete_study(name, if_idle=not force)
        self._forget(name)
        return trials

    def annotate(
        self,
        study: str,
        trial: int | None = None,
        *,
        note: str | None = None,
        tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
    ) -> Annotations:
        """Set the note and tags of a study, or of one of its trials."""
        return self.store.annotate(study, trial, note=note, tags=tags, remove_tags=remove_tags)

    def enqueue(self, study: str, params: Sequence[Mapping[str, object]]) -> list[Trial]:
        """Queue known parameter sets; they are handed out before any suggestion."""
        mirror = self._mirror(study)
        with mirror.cond:
            room = mirror.config.budget.max_trials - mirror.total
            if len(params) > room:  # counts the trials being inserted right now too
                raise InvalidArgumentError(
                    f"study {study!r} has room for {max(room, 0)} more trials and "
                    f"{len(params)} were given; raise max_trials first"
                )
            trials = self.store.enqueue_trials(study, params)
            mirror.total += len(trials)
            mirror.waiting += len(trials)
            mirror.cond.notify_all()
        return trials

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
        hold = self.hold_seconds if wait is None else max(0.0, min(wait, MAX_HOLD_SECONDS))
        return self._scheduler.ask(
            self._mirror(study),
            worker_id,
            min(count, MAX_TRIALS_PER_ASK),
            hold=hold,
            lease_seconds=lease_seconds,
            restarted=restarted,
        )

    def heartbeat(
        self, study: str, number: int, attempt: int, *, lease_seconds: float | None = None
    ) -> LeaseAnswer:
        """Renew a running attempt's lease (``lease_seconds``, default: the study's).

        An attempt whose lease expired while its trial still waits for the retry is
        revived; StaleAttemptError once another attempt started or the trial finished.
        """
        mirror = self._mirror(study)
        lease = mirror.config.lease_seconds if lease_seconds is None else lease_seconds
        trial = self.store.renew_lease(study, number, attempt, lease_seconds=lease)
        self._note_renewal(mirror, trial, attempt)
        return LeaseAnswer(trial, *self._stopping_rules.study_stopped(mirror))

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
        mirror = self._mirror(study)
        clean = finite_metrics(metrics, where=f"trial {number} step {step}")
        if not 0 <= step <= MAX_STEP:  # checked before the lease is renewed: no write
            raise InvalidArgumentError(f"step must be in [0, {MAX_STEP}], got {step}")
        lease = mirror.config.lease_seconds if lease_seconds is None else lease_seconds
        with mirror.cache_lock:
            renewed = mirror.renewed_at.get(number)
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
                self._note_renewal(mirror, trial, attempt)
            record = self.store.add_measurement(study, number, attempt, step, clean, late=late)
        else:
            # Renewed moments ago: the measurement alone (the store still refuses a stale
            # attempt) saves a write per report.
            record = self.store.add_measurement(study, number, attempt, step, clean)
            trial = None
        with mirror.cache_lock:
            cached = mirror.measured.get(number)
            if cached is None or cached[0] != attempt:
                cached = mirror.measured[number] = (attempt, {})
            cached[1].setdefault(record.step, record)
        stop, reason = self._stopping_rules.after_report(mirror, number, attempt, step)
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
        infeasible: str | None = None,
    ) -> Trial:
        """Finish an attempt as COMPLETED.  Idempotent.

        Without ``value`` the objective is the study metric in ``metrics``, else taken from
        the attempt's intermediate measurements under the study's ``measurement`` rule.
        In a multi-objective study every objective is taken so (from ``metrics``, else the
        last measurement that has it), and ``value`` is the first; a constraint's metric
        too (from ``metrics``, else its last measurement).  The trial is
        infeasible when the caller says so (``infeasible``: the reason, as Vertex AI's
        INFEASIBLE) or when its metrics break a constraint of the study; an infeasible
        trial may lack its objectives.
        A late result (its attempt was given up on: the lease expired, or the worker
        restarted) still counts when no other attempt completed the trial; an attempt
        started in its place is ended as STOPPED.  When another attempt completed it, the
        stored trial is returned unchanged (its ``attempt`` says whose result counts).
        """
        mirror = self._mirror(study)
        config = mirror.config
        clean = finite_metrics(metrics or {}, where=f"trial {number}")
        if value is not None and (isinstance(value, bool) or not math.isfinite(float(value))):
            raise InvalidArgumentError(
                f"trial {number}: the objective value must be a finite number, got {value!r}"
            )
        if value is not None:
            clean.setdefault(config.metric.name, float(value))
        for metric in config.metrics:  # each objective: reported, else the measurements
            if metric.name not in clean:
                found = self._value_from_measurements(config, study, number, attempt, metric)
                if found is not None:
                    clean[metric.name] = found
        for constraint in config.constraints:  # a constraint metric: its last report
            if constraint.metric not in clean:
                found = self._value_from_measurements(
                    config, study, number, attempt, Metric(constraint.metric), last=True
                )
                if found is not None:
                    clean[constraint.metric] = found
        if config.multi_objective or value is None:
            value = clean.get(config.metric.name)
        reasons = config.violations(clean)
        if infeasible is not None:
            reasons.insert(0, str(infeasible).strip() or "reported infeasible")
        missing = [m.name for m in config.metrics if m.name not in clean]
        if missing and not reasons:
            which = (
                f"metric {missing[0]!r} was" if len(missing) == 1 else f"metrics {missing} were"
            )
            raise InvalidArgumentError(
                f"trial {number}: the study {which} not reported "
                f"(got {sorted(clean) or 'no metrics'}); report it, pass value, or "
                "complete the trial as infeasible"
            )
        trial = self.store.complete_trial(
            study,
            number,
            attempt,
            None if value is None else float(value),
            clean,
            infeasible_reason="; ".join(reasons) if reasons else None,
        )
        if reasons:
            logger.info(
                "trial infeasible study=%s number=%d reason=%r", study, number, "; ".join(reasons)
            )
        self._scheduler.after_end(mirror, trial, attempt)
        return trial

    def fail(
        self, study: str, number: int, attempt: int, message: str, *, retry: bool = False
    ) -> Trial:
        """Finish an attempt as FAILED; with ``retry`` it gets another attempt if allowed."""
        mirror = self._mirror(study)
        trial = self.store.fail_trial(
            study, number, attempt, message or "failed (no message)", retry=retry
        )
        self._scheduler.after_end(mirror, trial, attempt)
        return trial

    def stop_trial(
        self, study: str, number: int, attempt: int, *, value: float | None = None
    ) -> Trial:
        """Finish an attempt as STOPPED (early stopping or study stopped).

        Without ``value`` a single-objective trial keeps the value its intermediate
        measurements give under the study's ``measurement`` rule, as Vertex AI keeps an
        early-stopped trial's measurements: the search learns from it (a stopped trial that
        taught nothing was proposed again), and listings show how far it got."""
        mirror = self._mirror(study)
        if value is not None and not math.isfinite(value):
            raise InvalidArgumentError(f"trial {number}: value must be finite, got {value!r}")
        config = mirror.config
        if value is None and not config.multi_objective:
            value = self._value_from_measurements(config, study, number, attempt, config.metric)
        trial = self.store.stop_trial(study, number, attempt, value=value)
        self._scheduler.after_end(mirror, trial, attempt)
        return trial

    def get_trial(self, study: str, number: int, *, exact: bool = True) -> Trial:
        """A trial from SQL; with ``exact=False`` a running trial handed out by this chief
        comes from memory (its lease expiry may be a little behind)."""
        if not exact:
            trial = self._mirror(study).trials.get(number)
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
        mirror = self._mirror(study)
        with mirror.cache_lock:
            cached = mirror.measured.get(number)
            if cached is not None and cached[0] == attempt and number in mirror.running:
                return [cached[1][step] for step in sorted(cached[1])]
            running = mirror.running.get(number)
            if running is not None and running[1] == attempt and running[2]:
                return []  # handed out by this chief and nothing reported yet
        return [m for m in self.store.list_measurements(study, number) if m.attempt == attempt]

    def record_artifacts(
        self, study: str, number: int, attempt: int, artifacts: Mapping[str, str]
    ) -> Trial:
        """Keep where an attempt's files are (model, checkpoint and log directories, its
        output log) in its trial's tags, for the dashboard."""
        return self.store.record_artifacts(study, number, attempt, artifacts)

    def refill(self, study: str) -> bool:
        """Compute the study's next suggestions now, on this thread, if its buffer needs
        them; True when it did.  For a program that drives the oracle without starting
        its threads (a simulation, a single-threaded loop); the suggester thread does this
        otherwise."""
        mirror = self._mirror(study)
        with mirror.cond:
            needed = mirror.needs_suggestions()
        if needed:
            self._suggester.refill(mirror)
        return needed

    def sweep(self) -> list[Trial]:
        """Expire lapsed leases now (the sweeper thread calls this every second)."""
        changed = self.store.expire_leases()
        names = {trial.study_id: self._name_of(trial) for trial in changed}
        for trial in changed:
            log_trial(trial, names[trial.study_id], event="lease expired")
        for name in set(names.values()):
            mirror = self._studies.get(name)
            if mirror is not None:
                mirror.resync(self.store)
        return changed

    # -- helpers --------------------------------------------------------------------------
    def _mirror(self, name: str) -> StudyMirror:
        mirror = self._studies.get(name)
        if mirror is not None:
            return mirror
        with self._registry_lock:
            mirror = self._studies.get(name)
            if mirror is None:
                study = self.store.get_study(name)  # NotFoundError for an unknown study
                mirror = StudyMirror(study)
                mirror.resync(self.store, load_history=True)
                self._studies[name] = mirror
                self._suggester.wake()
        return mirror

    def _adopt(self, study: Study) -> None:
        mirror = self._studies.get(study.name)
        if mirror is None:
            return
        with mirror.cond:
            mirror.adopt(study)
        self._suggester.wake()

    def _forget(self, name: str, mirror: StudyMirror | None = None) -> None:
        """Drop a deleted study's mirror (``mirror``: only if it is still that one)."""
        with self._registry_lock:
            found = self._studies.get(name)
            if found is None or (mirror is not None and found is not mirror):
                return
            del self._studies[name]
        with found.cond:
            found.forget()
        logger.info("study forgotten: deleted study=%s", name)

    def _note_renewal(self, mirror: StudyMirror, trial: Trial, attempt: int) -> None:
        with mirror.cache_lock:
            mirror.renewed_at[trial.number] = (attempt, time.monotonic())
        held = mirror.running.get(trial.number)
        if held is None or held[1] != attempt:
            mirror.resync(self.store)  # a lost attempt revived by its heartbeat

    def _value_from_measurements(
        self,
        config: StudyConfig,
        study: str,
        number: int,
        attempt: int,
        metric: Metric,
        *,
        last: bool = False,
    ) -> float | None:
        values = [
            m.metrics[metric.name]
            for m in self.measurements(study, number, attempt)
            if metric.name in m.metrics
        ]
        # Several objectives are read off one point, the last report: each objective's own
        # best could come from different steps, a point the model never trained to.
        rule = Measurement.LAST if last or config.multi_objective else config.measurement
        return rule.select(values, metric.goal)

    def _name_of(self, trial: Trial) -> str:
        for name, mirror in self._studies.items():
            if mirror.study_id == trial.study_id:
                return name
        return ""

    def _sweep_loop(self) -> None:
        last_resync = time.monotonic()
        while not self._stopping.wait(self.sweep_seconds):
            try:
                self.sweep()
                if time.monotonic() - last_resync >= self.resync_seconds:
                    last_resync = time.monotonic()
                    for name, mirror in list(self._studies.items()):
                        try:
                            mirror.resync(self.store)
                        except NotFoundError:  # deleted behind the chief (the CLI)
                            self._forget(name, mirror)
            except StorageError as error:  # the database is restarting: one line, no trace
                logger.warning("lease sweep skipped for now: %s", error)
            except Exception:  # keep sweeping through anything else, with its traceback
                logger.exception("lease sweep failed")


__all__ = ["DEFAULT_HOLD_SECONDS", "MAX_HOLD_SECONDS", "MAX_TRIALS_PER_ASK", "Oracle"]
