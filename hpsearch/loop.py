"""The in-process search loop: ``hpsearch.optimize(objective, study, ...)``.

Optuna's ``study.optimize`` and Keras Tuner's ``tuner.search()`` in hpsearch's words: the
trials run in this process (on the calling thread, or on ``n_jobs`` threads), with no chief
to start.  They are scheduled by the same :class:`~hpsearch.oracle.Oracle` the chief runs,
over the same store, so the study's algorithm, budget, leases, retries and early stopping
behave as they do under a chief, and ``hpsearch trials``, ``hpsearch best``, the dashboard
and ``hpsearch export`` work on the result::

    import hpsearch

    def objective(trial):
        model = build(trial.params)
        for epoch in range(1, 21):
            loss = train_one_epoch(model)
            if trial.report(epoch, loss):  # True: the early-stopping rule says stop
                break
        model.export(trial.model_dir + "/1")
        return loss

    result = hpsearch.optimize(objective, "study.yaml", n_trials=50, n_jobs=4)
    print(result.best_trial)

Each thread is a worker of its own (``optimize-<host>-<pid>/<k>``): it asks the oracle for
a trial, runs the objective, ends the attempt, asks again.  One more thread renews the
leases of the running trials, so an objective may run for hours between reports, and
expires lapsed leases (the oracle's sweep); if this process dies, its trials are handed out
again once their leases expire (to the next ``optimize`` call or a chief's workers), as the
next attempt.

The oracle's own threads are not started.  The suggestions are computed on the thread that
needs one (:meth:`~hpsearch.oracle.Oracle.refill`), one thread at a time: with one job, a
model-based algorithm fits once per trial, after the last result, as Optuna's loop does,
instead of once ahead on the suggester thread and again when the result makes that one
stale; and an algorithm that fails (a missing extra) raises its error to the caller instead
of being retried in the background.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from hpsearch.errors import (
    AlreadyExistsError,
    HpsearchError,
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
    TrialInfeasible,
)
from hpsearch.oracle import AskStatus, Oracle
from hpsearch.records import Study, Trial, TrialState
from hpsearch.space import Params, Rung, StudyConfig, load_study
from hpsearch.store import DEFAULT_URL, Store, safe_url
from hpsearch.worker.contract import TrialDirs, seed_checkpoint

logger = logging.getLogger(__name__)

#: The variable naming the storage when ``storage`` is not given; unset, the store's
#: ``DEFAULT_URL`` (``sqlite:///hpsearch.db``): the ``hpsearch`` command's default.
STORAGE_ENV = "HPSEARCH_STORAGE"
#: The trials' directories, as ``hpsearch worker --output-dir`` and ``hpsearch export --from``.
DEFAULT_OUTPUT_DIR = "hpsearch-output"
#: Lines of a failed trial's traceback kept as its failure message.
FAILURE_TAIL_LINES = 20
#: The most trials of a Pareto front an OptimizeResult holds.
MAX_FRONT = 1000
#: How long one ``ask`` is held by the oracle while every slot is taken.
ASK_HOLD_SECONDS = 1.0
#: Lapsed leases are expired this often (the chief's sweeper does it every second too).
SWEEP_SECONDS = 1.0

#: What an objective returns: the objective value, metrics holding the study's metric, or
#: None (the value then comes from the reports, by the study's ``measurement`` rule).
ObjectiveResult: TypeAlias = "float | Mapping[str, float] | None"
Objective: TypeAlias = "Callable[[RunningTrial], ObjectiveResult]"


def optimize(
    objective: Objective,
    study: StudyConfig | str | os.PathLike[str],
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    storage: str | Store | None = None,
    catch: type[Exception] | tuple[type[Exception], ...] = (),
    output_dir: str | os.PathLike[str] = DEFAULT_OUTPUT_DIR,
) -> OptimizeResult:
    """Run trials of ``study`` in this process until ``n_trials`` ran, ``timeout`` seconds
    passed, or the study is finished (its ``budget.max_trials`` done), whichever comes first.

    ``study``: a :class:`~hpsearch.space.StudyConfig` or a study file (created, or resumed
    when a study of that name exists with the same declaration; a different declaration is
    an error that names the differences), or the name of a study in ``storage``.

    ``objective(trial)`` gets a :class:`RunningTrial` (``trial.params``, ``trial.report``,
    ``trial.should_stop``, ``trial.model_dir``...) and returns the objective value, a
    mapping of metrics that holds the study's metric, or None once it reported the metric
    (the value is then chosen from the reports by the study's ``measurement`` rule).  When
    the oracle said stop (early stopping, the study stopped) the trial ends STOPPED with what
    the objective returns; otherwise COMPLETED.

    Failures: an exception raised by the objective fails the trial (FAILED, with the end of
    its traceback as the failure message, and no retry: the same code would fail again).
    It is then raised from ``optimize`` once the other threads' trials ended, unless it is
    an instance of ``catch``: then the loop goes on.  A value that is not a finite number
    (NaN) fails the trial and the loop goes on, as in Optuna.  A KeyboardInterrupt fails the
    trial *with* a retry (it goes back to WAITING and is run first by the next call) and is
    raised at once; with ``n_jobs > 1`` a first Ctrl-C lets the running trials end, a
    second leaves them to be retried once their leases expire.

    ``n_trials``: how many trials this call runs (each a call of the objective: a retried
    trial counts again), at most what is left of ``budget.max_trials``; None: until the
    budget or ``timeout`` runs out.  ``n_jobs``: threads running trials at once (-1: one per
    CPU); it must not exceed the study's ``budget.parallel_trials``.

    ``storage``: a database URL or an open :class:`~hpsearch.store.Store`; default
    ``$HPSEARCH_STORAGE``, else the embedded SQLite file ``hpsearch.db`` in the current
    directory (the ``hpsearch`` command's default, so ``hpsearch trials NAME`` finds it).
    ``sqlite://`` keeps the study in memory, for this call only.

    ``output_dir``: the base of the trials' directories (``trial.model_dir`` is
    ``<output_dir>/<study>/<number>/model``, as under ``hpsearch worker --output-dir``), so
    ``hpsearch export best NAME --from <output_dir>`` finds the best trial's model.
    """
    n_trials = _check_count(n_trials, "n_trials")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise InvalidArgumentError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    jobs = _check_jobs(n_jobs)
    catch = _check_catch(catch)
    if not callable(objective):
        raise InvalidArgumentError(
            f"objective must be a function of the trial, got {type(objective).__name__}"
        )
    store, owned = _open_store(storage)
    oracle = Oracle(store)
    try:
        record = _open_study(oracle, study)
        parallel = record.config.budget.parallel_trials
        if jobs > parallel:
            raise InvalidArgumentError(
                f"n_jobs={jobs} but study {record.name!r} runs at most "
                f"budget.parallel_trials={parallel} trial(s) at once; lower n_jobs to "
                f"{parallel} or declare the study with budget: {{parallel_trials: {jobs}}}"
            )
        loop = _Loop(
            oracle,
            record,
            objective,
            n_trials=n_trials,
            deadline=None if timeout is None else time.monotonic() + timeout,
            catch=catch,
            output_dir=os.fspath(output_dir),
        )
        logger.info(
            "optimize starting study=%s n_trials=%s n_jobs=%d storage=%s",
            record.name,
            n_trials,
            jobs,
            safe_url(store.url),
        )
        loop.run(jobs)
        front = store.best_trials(record.name, MAX_FRONT)
        result = OptimizeResult(
            study=store.get_study(record.name),
            trials=list(loop.ended),
            best_trial=front[0] if front else None,
            storage=safe_url(store.url),
            best_trials=front if record.config.multi_objective else front[:1],
        )
        logger.info(
            "optimize finished study=%s trials=%d state=%s best=%s",
            record.name,
            len(result.trials),
            result.study.state.value,
            result.best_value,
        )
        return result
    finally:
        oracle.stop()
        if owned:
            store.close()


@dataclass(frozen=True)
class OptimizeResult:
    """What :func:`optimize` did: the study afterwards, the trials this call ended (in the
    order they ended) and the study's best feasible completed trial (of any run); with
    several metrics, ``best_trial`` is the front's best by the first metric."""

    study: Study
    trials: list[Trial] = field(default_factory=list)
    best_trial: Trial | None = None
    storage: str = ""  # the database URL, password hidden
    #: The best trial in a list; in a study with several metrics, its Pareto front (best
    #: first by the first metric), as Optuna's ``study.best_trials``.
    best_trials: list[Trial] = field(default_factory=list)

    @property
    def best_value(self) -> float | None:
        return None if self.best_trial is None else self.best_trial.value

    @property
    def best_params(self) -> Params | None:
        return None if self.best_trial is None else self.best_trial.params


class RunningTrial:
    """The trial an objective runs (one attempt of it) and its line to the oracle.

    ``params`` are the trial's parameter values (active parameters only), ``number`` its
    number in the study, ``attempt`` which run of it this is (a retried trial runs again as
    attempt 2...), ``fidelity`` its budget in a multi-fidelity study (train up to
    ``fidelity.epochs``, from ``fidelity.initial_epoch``), ``metric`` the study's metric.
    """

    def __init__(self, loop: _Loop, trial: Trial) -> None:
        self.study: str = loop.name
        self.number: int = trial.number
        self.attempt: int = trial.attempt
        self.params: Params = dict(trial.params)
        self.fidelity: Rung | None = trial.fidelity
        self.metric: str = loop.config.metric.name
        self._loop = loop
        self._stop = False
        self._reason = ""
        self._values: list[float] = []  # the study metric as reported, for a STOPPED value
        self._dirs: TrialDirs | None = None
        self.last_contact = time.monotonic()  # the lease was last renewed then

    def __repr__(self) -> str:
        return (
            f"RunningTrial(study={self.study!r}, number={self.number}, "
            f"attempt={self.attempt}, params={self.params!r})"
        )

    def report(self, step: int, value: float | Mapping[str, float]) -> bool:
        """Record an intermediate result at ``step`` (an epoch, say): a value of the study's
        metric, or a mapping of metrics.  Returns :attr:`should_stop`.

        The step comes first (as in ``hpsearch.Client.report``; Optuna's ``report`` takes
        the value first).  Reporting a step again keeps the first report.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidArgumentError(
                f"trial {self.number}: step must be a whole number >= 0, got {step!r} "
                "(report(step, value): the step comes first)"
            )
        metrics = value if isinstance(value, Mapping) else {self.metric: value}
        loop = self._loop
        try:
            answer = loop.oracle.report(self.study, self.number, self.attempt, step, metrics)
        except StaleAttemptError as error:
            self._told_to_stop(f"this attempt no longer runs the trial: {error}")
            return True
        self.last_contact = time.monotonic()
        if self.metric in metrics:
            self._values.append(float(metrics[self.metric]))
        if answer.should_stop:
            self._told_to_stop(answer.reason)
        return self._stop

    @property
    def should_stop(self) -> bool:
        """Whether the oracle said this trial should stop: the study's early-stopping rule
        (after a :meth:`report`), the study was stopped, or this attempt lost its lease
        (learnt from the lease renewals).  Stop training and return what you have: the
        trial then ends STOPPED."""
        return self._stop

    @property
    def stop_reason(self) -> str:
        """Why the trial should stop ("" while it should not)."""
        return self._reason

    @property
    def model_dir(self) -> str:
        """``<output_dir>/<study>/<number>/model``: save the model here (``hpsearch export``
        looks for ``<version>/saved_model.pb`` under it).  Created on first use."""
        return self._trial_dirs().model

    @property
    def checkpoint_dir(self) -> str:
        """``<output_dir>/<study>/<number>/checkpoints``: kept across attempts, so a retried
        attempt can resume; a promoted trial of a multi-fidelity study finds its parent's
        checkpoint copied here.  Created on first use."""
        return self._trial_dirs().checkpoints

    @property
    def log_dir(self) -> str:
        """``<output_dir>/<study>/<number>/logs``: TensorBoard logs.  Created on first use."""
        return self._trial_dirs().logs

    def reported_value(self) -> float | None:
        """The study metric chosen from this attempt's reports by the study's
        ``measurement`` rule (None before any report of it)."""
        config = self._loop.config
        return config.measurement.select(self._values, config.metric.goal)

    def _told_to_stop(self, reason: str) -> None:
        if not self._stop:
            logger.info(
                "trial told to stop study=%s number=%d attempt=%d reason=%r",
                self.study,
                self.number,
                self.attempt,
                reason,
            )
        self._stop = True
        self._reason = self._reason or reason or "the oracle said stop"

    def _trial_dirs(self) -> TrialDirs:
        if self._dirs is None:
            root = "/".join([self._loop.output_dir.rstrip("/"), self.study, str(self.number)])
            dirs = TrialDirs(
                root=root,
                model=root + "/model",
                checkpoints=root + "/checkpoints",
                logs=root + "/logs",
                metric_file="",
            )
            if "://" not in root:  # gs:// and the like are TensorFlow's to create
                for path in (dirs.model, dirs.checkpoints, dirs.logs):
                    Path(path).mkdir(parents=True, exist_ok=True)
            if self.fidelity is not None:
                study_dir = root.rsplit("/", 1)[0]
                logger.info(
                    "trial budget study=%s number=%d: %s",
                    self.study,
                    self.number,
                    seed_checkpoint(study_dir, self.fidelity, dirs),
                )
            self._dirs = dirs
        return self._dirs


class _Loop:
    """One :func:`optimize` call: its threads, the trial budget and the running trials."""

    def __init__(
        self,
        oracle: Oracle,
        study: Study,
        objective: Objective,
        *,
        n_trials: int | None,
        deadline: float | None,
        catch: tuple[type[Exception], ...],
        output_dir: str,
    ) -> None:
        self.oracle = oracle
        self.name = study.name
        self.config = study.config
        self.output_dir = output_dir
        self.ended: list[Trial] = []
        self._objective = objective
        self._left = n_trials
        self._deadline = deadline
        self._catch = catch
        self._worker_id = f"optimize-{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._halt = threading.Event()  # ask for no more trials
        self._done = threading.Event()  # every thread left: stop the heartbeats
        self._error: BaseException | None = None
        self._running: dict[int, RunningTrial] = {}
        self._refilling = threading.Lock()  # one suggestion computed at a time

    def run(self, jobs: int) -> None:
        """Run trials on the calling thread (``jobs == 1``) or on ``jobs`` threads; raise the
        objective's error that stopped the loop, if any."""
        heartbeats = threading.Thread(
            target=self._heartbeats, name="hpsearch-optimize-heartbeats", daemon=True
        )
        heartbeats.start()
        try:
            if jobs == 1:
                self._work(self._worker_id)
            else:
                threads = [
                    threading.Thread(
                        target=self._work_on_thread,
                        args=(f"{self._worker_id}/{k}",),
                        name=f"hpsearch-optimize-{k}",
                        daemon=True,
                    )
                    for k in range(jobs)
                ]
                for thread in threads:
                    thread.start()
                self._join(threads)
        finally:
            self._done.set()
            heartbeats.join()
        if self._error is not None:
            raise self._error

    # -- one thread -----------------------------------------------------------------------
    def _work_on_thread(self, worker_id: str) -> None:
        """:meth:`_work` on a thread of its own: what ends it unexpectedly (a database
        error, ``sys.exit`` in the objective) stops the loop and is raised by :meth:`run`."""
        try:
            self._work(worker_id)
        except BaseException as error:
            with self._lock:
                if self._error is None:
                    self._error = error
            self._halt.set()

    def _work(self, worker_id: str) -> None:
        while self._take():
            trial = self._ask(worker_id)
            if trial is None:
                return
            self._run(trial)

    def _take(self) -> bool:
        """Take one trial of the ``n_trials`` budget (False: this call is done)."""
        if self._halt.is_set() or self._past_deadline():
            return False
        with self._lock:
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def _ask(self, worker_id: str) -> Trial | None:
        """The next trial to run; None once the study is finished, or this call is."""
        hold = 0.0
        computed = False  # suggestions were just computed, and still no trial came
        while not self._halt.is_set():
            if self._deadline is not None:
                hold = min(hold, self._deadline - time.monotonic())
                if hold < 0:
                    return None
            # This thread asks only once it ended its last trial: a trial it still holds
            # (its end was not recorded) is given up and retried, as for a restarted worker.
            answer = self.oracle.ask(self.name, worker_id, wait=hold, restarted=True)
            if answer.status is AskStatus.TRIALS:
                return answer.trials[0]
            if answer.status is AskStatus.DONE:
                return None
            with self._refilling:
                refilled = self.oracle.refill(self.name)
            if refilled and computed and self._space_exhausted():
                return None
            # Computed: ask again at once.  Nothing to compute (every slot is taken), or
            # computed twice in vain: hold the next ask until a trial ends.
            hold = 0.0 if refilled and not computed else ASK_HOLD_SECONDS
            computed = refilled and not computed
        return None

    def _space_exhausted(self) -> bool:
        """No new parameter values came from the algorithm, and no trial runs or waits that
        could change that: every point of a finite space was tried."""
        counts = self.oracle.store.count_trials(self.name)
        if counts.get(TrialState.RUNNING, 0) or counts.get(TrialState.WAITING, 0):
            return False
        logger.warning(
            "the search space is exhausted: no new parameter values to try study=%s "
            "trials=%d; the study stays open (raise a range or add values to go on)",
            self.name,
            sum(counts.values()),
        )
        return True

    def _run(self, trial: Trial) -> None:
        handle = RunningTrial(self, trial)
        with self._lock:
            self._running[trial.number] = handle
        try:
            try:
                result = self._objective(handle)
            except TrialInfeasible as said:
                metrics, reason = said.metrics, str(said) or "infeasible"
                self._end(
                    handle,
                    lambda: self.oracle.complete(
                        *_key(handle), metrics=metrics, infeasible=reason
                    ),
                )
            except BaseException as error:
                self._failed(handle, error)
            else:
                self._finish(handle, result)
        finally:
            with self._lock:
                self._running.pop(trial.number, None)

    def _finish(self, handle: RunningTrial, result: Any) -> None:
        try:
            value, metrics = _objective_result(result, handle.number)
        except InvalidArgumentError as error:
            self._end_failed(handle, str(error))
            return
        if handle.should_stop:
            if value is None and metrics is not None:
                value = metrics.get(handle.metric)
            if value is None:
                value = handle.reported_value()
            if value is not None and not math.isfinite(value):
                value = None
            self._end(handle, lambda: self.oracle.stop_trial(*_key(handle), value=value))
            return
        try:
            self._end(
                handle,
                lambda: self.oracle.complete(*_key(handle), value=value, metrics=metrics),
            )
        except InvalidArgumentError as error:  # NaN, or no value reported nor returned
            self._end_failed(handle, str(error))

    def _failed(self, handle: RunningTrial, error: BaseException) -> None:
        """End the attempt whose objective raised ``error``; re-raise what stops the loop."""
        interrupted = not isinstance(error, Exception)  # KeyboardInterrupt, SystemExit
        message = _failure_message(error)
        self._end(
            handle,
            lambda: self.oracle.fail(*_key(handle), message, retry=interrupted),
        )
        if interrupted:
            self._halt.set()
            raise error
        caught = isinstance(error, self._catch)
        logger.warning(
            "trial failed study=%s number=%d attempt=%d params=%s error=%r%s",
            handle.study,
            handle.number,
            handle.attempt,
            handle.params,
            error,
            "" if caught else "; optimize stops",
            exc_info=error,
        )
        if not caught:
            with self._lock:
                if self._error is None:
                    self._error = error
            self._halt.set()

    def _end_failed(self, handle: RunningTrial, message: str) -> None:
        logger.warning(
            "trial failed study=%s number=%d attempt=%d message=%r",
            handle.study,
            handle.number,
            handle.attempt,
            message,
        )
        self._end(handle, lambda: self.oracle.fail(*_key(handle), message))

    def _end(self, handle: RunningTrial, end: Callable[[], Trial]) -> None:
        """End the attempt through ``end``; a refusal (another attempt took the trial
        over: see the late-report rules) is logged, not raised."""
        try:
            trial = end()
        except StaleAttemptError as error:
            logger.warning(
                "result refused study=%s number=%d attempt=%d error=%s",
                handle.study,
                handle.number,
                handle.attempt,
                error,
            )
            return
        with self._lock:
            self.ended.append(trial)

    # -- all threads ----------------------------------------------------------------------
    def _join(self, threads: list[threading.Thread]) -> None:
        try:
            _join_all(threads)
        except KeyboardInterrupt:
            self._halt.set()
            with self._lock:
                running = len(self._running)
            logger.warning(
                "interrupted: no new trials; waiting for %d running trial(s) to end "
                "(Ctrl-C again leaves them running: they are retried once their leases "
                "expire)",
                running,
            )
            _join_all(threads)
            raise

    def _heartbeats(self) -> None:
        """Renew the running trials' leases while their objectives are quiet, and expire
        lapsed leases (a crashed run's trials go back to WAITING, to be retried here)."""
        interval = max(0.5, min(self.config.lease_seconds / 3.0, 30.0))
        swept = time.monotonic()
        while not self._done.wait(min(interval / 2, SWEEP_SECONDS)):
            if time.monotonic() - swept >= SWEEP_SECONDS:
                swept = time.monotonic()
                try:
                    self.oracle.sweep()
                except HpsearchError as error:  # a database hiccup: the next round retries
                    logger.warning("lease sweep failed study=%s error=%s", self.name, error)
            with self._lock:
                handles = list(self._running.values())
            for handle in handles:
                if time.monotonic() - handle.last_contact < interval:
                    continue
                try:
                    answer = self.oracle.heartbeat(*_key(handle))
                except StaleAttemptError as error:
                    handle._told_to_stop(f"this attempt no longer runs the trial: {error}")
                    continue
                except HpsearchError as error:
                    logger.warning(
                        "heartbeat failed study=%s number=%d error=%s",
                        handle.study,
                        handle.number,
                        error,
                    )
                    continue
                handle.last_contact = time.monotonic()
                if answer.should_stop:
                    handle._told_to_stop(answer.reason)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline


# -- helpers --------------------------------------------------------------------------------
def _open_store(storage: str | Store | None) -> tuple[Store, bool]:
    """The store to run in, and whether this call opened it (and closes it)."""
    if isinstance(storage, Store):
        return storage, False
    if storage is None:
        storage = os.environ.get(STORAGE_ENV) or DEFAULT_URL
    if not isinstance(storage, str):
        raise InvalidArgumentError(
            "storage must be a database URL (sqlite:///path.db, postgresql+psycopg://...) "
            f"or a hpsearch.store.Store, got {type(storage).__name__}"
        )
    return Store(storage), True


def _open_study(oracle: Oracle, study: StudyConfig | str | os.PathLike[str]) -> Study:
    """Create or resume the study ``optimize`` was given (see there)."""
    if isinstance(study, StudyConfig):
        return _create_or_resume(oracle, study)
    if isinstance(study, os.PathLike) or (
        isinstance(study, str)
        and (Path(study).is_file() or study.lower().endswith((".yaml", ".yml", ".json")))
    ):
        return _create_or_resume(oracle, load_study(Path(study)))
    if isinstance(study, str):
        try:
            return oracle.get_study(study)
        except NotFoundError:
            raise NotFoundError(
                f"no study named {study!r} in {safe_url(oracle.store.url)} and no such study "
                "file; pass a StudyConfig or a study file (.yaml/.json) to create it"
            ) from None
    raise InvalidArgumentError(
        "study must be a hpsearch.space.StudyConfig, a study file or the name of a study, "
        f"got {type(study).__name__}"
    )


def _create_or_resume(oracle: Oracle, config: StudyConfig) -> Study:
    try:
        return oracle.create_study(config, exist_ok=True)
    except AlreadyExistsError:
        stored = oracle.get_study(config.name).config.to_dict()
        given = config.to_dict()
        changed = ", ".join(
            f"{key}: {stored.get(key)!r} stored, {given.get(key)!r} given"
            for key in sorted(set(stored) | set(given))
            if stored.get(key) != given.get(key)
        )
        raise AlreadyExistsError(
            f"study {config.name!r} already exists in {safe_url(oracle.store.url)} with "
            f"another declaration ({changed}); pass its name ({config.name!r}) to continue it "
            "as stored, or give this declaration another name"
        ) from None


def _objective_result(result: Any, number: int) -> tuple[float | None, dict[str, Any] | None]:
    """(value, metrics) of what an objective returned."""
    if result is None:
        return None, None
    if isinstance(result, Mapping):
        return None, dict(result)
    if not isinstance(result, (str, bytes, bool)):
        try:
            return float(result), None
        except (TypeError, ValueError):
            pass
    raise InvalidArgumentError(
        f"trial {number}: the objective returned {result!r}; return a number, a mapping of "
        "metrics holding the study's metric, or None after reporting the metric"
    )


def _failure_message(error: BaseException) -> str:
    lines = "".join(traceback.format_exception(error)).rstrip().splitlines()
    return "\n".join(lines[-FAILURE_TAIL_LINES:])


def _key(handle: RunningTrial) -> tuple[str, int, int]:
    return handle.study, handle.number, handle.attempt


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)  # in slices, so that Ctrl-C reaches the main thread


def _check_count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be an integer >= 1 or None, got {value!r}")
    return value


def _check_jobs(n_jobs: int) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or (n_jobs < 1 and n_jobs != -1):
        raise InvalidArgumentError(
            f"n_jobs must be an integer >= 1, or -1 for one per CPU, got {n_jobs!r}"
        )
    return n_jobs if n_jobs != -1 else os.cpu_count() or 1


def _check_catch(catch: Any) -> tuple[type[Exception], ...]:
    classes = catch if isinstance(catch, tuple) else (catch,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise InvalidArgumentError(
                f"catch takes exception classes, e.g. catch=(ValueError,), got {cls!r}"
            )
    return classes


__all__ = ["OptimizeResult", "RunningTrial", "optimize"]
