"""Who runs which trial: the hand-out of trials to asking workers, and the study's end.

:meth:`Scheduler.ask` holds a worker's call on the study's condition variable until a
trial can be handed out (a WAITING trial is claimed first, else a ready suggestion becomes
a new trial), the budget allows it, or the hold runs out; :meth:`Scheduler.after_end`
accounts for a trial that ended and finishes the study once its budget is spent.  Both
run on RPC threads and take the study's lock only for bookkeeping: the lock is released
around every SQL write, with the slot reserved first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hpsearch.errors import StaleAttemptError
from hpsearch.oracle.answers import AskResult, AskStatus
from hpsearch.oracle.mirror import StudyMirror, log_trial
from hpsearch.records import StudyState, Trial, TrialState
from hpsearch.space import Params, Rung
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)


class Scheduler:
    """Hands out the trials of every study of one store (one per oracle)."""

    def __init__(
        self, store: Store, *, wake_suggester: Callable[[], None], stopping: Callable[[], bool]
    ) -> None:
        self.store = store
        self._wake_suggester = wake_suggester
        self._stopping = stopping

    def ask(
        self,
        mirror: StudyMirror,
        worker_id: str,
        count: int,
        *,
        hold: float,
        lease_seconds: float | None,
        restarted: bool,
    ) -> AskResult:
        """See :meth:`hpsearch.oracle.Oracle.ask` (arguments already checked)."""
        if restarted and mirror.by_worker.get(worker_id):
            self._abandon_held(mirror, worker_id)
        deadline = time.monotonic() + hold
        with mirror.cond:
            while True:
                mirror.last_demand = time.monotonic()
                if worker_id in mirror.reserving:  # a concurrent ask of this worker
                    mirror.cond.wait(max(0.0, deadline - time.monotonic()))
                    if time.monotonic() < deadline:
                        continue
                held = self._held_trials(mirror, worker_id)
                if held:
                    return AskResult(AskStatus.TRIALS, held, mirror.config.lease_seconds)
                if mirror.finished:
                    return AskResult(AskStatus.DONE)
                trials = self._hand_out(mirror, worker_id, count, lease_seconds)
                if trials:
                    return AskResult(AskStatus.TRIALS, trials, mirror.config.lease_seconds)
                if self._finish_if_done(mirror):
                    return AskResult(AskStatus.DONE)
                if mirror.needs_suggestions():
                    self._wake_suggester()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping():
                    return AskResult(AskStatus.WAIT)
                fresh_wait = mirror.fresh_wait_left()
                mirror.cond.wait(min(remaining, fresh_wait) if fresh_wait > 0 else remaining)

    def after_end(self, mirror: StudyMirror, trial: Trial, attempt: int) -> None:
        """Account for ``attempt`` of ``trial`` having ended, and finish the study when
        its budget is spent."""
        with mirror.cond:
            if not mirror.record_end(trial, attempt):
                if not mirror.counts_late_result(trial, attempt):
                    return  # a repeated or acknowledged report: already accounted for
                mirror.record_late_result(trial, attempt)
                mirror.cond.release()
                try:  # an attempt started in its place was ended: read what runs again
                    mirror.resync(self.store)
                finally:
                    mirror.cond.acquire()
            self._finish_if_done(mirror)
            mirror.cond.notify_all()
        if mirror.stale:
            self._wake_suggester()

    # -- hand-out (called with mirror.cond held) --------------------------------------------
    def _held_trials(self, mirror: StudyMirror, worker_id: str) -> list[Trial]:
        numbers = mirror.by_worker.get(worker_id)
        if not numbers:
            return []
        held = []
        for number in sorted(numbers):
            trial = self.store.get_trial(mirror.name, number)
            if trial.state is TrialState.RUNNING and trial.worker_id == worker_id:
                held.append(trial)
            else:
                mirror.forget_running(number)
        return held

    def _hand_out(
        self, mirror: StudyMirror, worker_id: str, count: int, lease: float | None
    ) -> list[Trial]:
        """Claim a WAITING trial or create one (from the buffer, or as the multi-fidelity
        schedule's next slot), up to the limits.

        Called with the study's lock held; the lock is released around each SQL write
        (the slot is reserved first), so other calls of the study are not held up by it.
        """
        budget = mirror.config.budget
        lease = mirror.config.lease_seconds if lease is None else lease
        trials: list[Trial] = []
        while len(trials) < count and mirror.active < budget.parallel_trials:
            slot = self._next_slot(mirror)
            if slot is None:
                break
            params, tags, token = slot
            if params is not None:
                mirror.total += 1
                mirror.reserved_new += 1
                mirror.in_flight.append(params)  # not in the buffer nor pending any more
            else:
                mirror.waiting -= 1
            mirror.reserved += 1
            mirror.reserving.add(worker_id)
            trial: Trial | None = None
            mirror.cond.release()
            try:
                if params is None:
                    trial = self.store.claim_trial(mirror.name, worker_id, lease_seconds=lease)
                else:
                    trial = self.store.create_trial(
                        mirror.name, params, worker_id=worker_id, lease_seconds=lease, tags=tags
                    )
            finally:
                mirror.cond.acquire()
                mirror.reserved -= 1
                mirror.reserving.discard(worker_id)
                if params is not None:
                    mirror.in_flight.remove(params)
                    mirror.reserved_new -= 1
                    if trial is None:  # the insert failed: give the slot back
                        mirror.total -= 1
                        if token is None:
                            mirror.buffer.appendleft(params)
                if token is not None:
                    mirror.schedule.settle(token, None if trial is None else trial.number)
                mirror.cond.notify_all()
            if trial is None:
                if params is None:
                    mirror.waiting = 0  # nothing was WAITING after all
                continue
            mirror.record_start(trial)
            log_trial(trial, mirror.name, event="started")
            trials.append(trial)
        if len(mirror.buffer) < mirror.low_water:
            self._wake_suggester()
        return trials

    def _next_slot(
        self, mirror: StudyMirror
    ) -> tuple[Params | None, dict[str, Any] | None, int | None] | None:
        """What the next hand-out is: ``(None, None, None)`` claims a WAITING trial (a
        retry), ``(params, tags, token)`` creates a trial (``token``: its place in the
        multi-fidelity schedule), None: nothing can be handed out now.  ``cond`` held."""
        if mirror.waiting > 0:
            return None, None, None
        if mirror.total >= mirror.config.budget.max_trials:
            return None
        schedule = mirror.schedule
        fresh = mirror.fresh_wait_left() <= 0  # what is ready knows the latest results
        if schedule is None:
            if not mirror.buffer or not fresh:
                return None
            return mirror.buffer.popleft(), None, None
        decision = schedule.next(ongoing=mirror.active > 0)
        if decision.kind in ("wait", "done"):
            return None
        if decision.kind == "promote":
            params = dict(decision.parent_params)
        elif mirror.buffer and fresh:
            params = mirror.buffer.popleft()
        else:
            return None  # a new configuration, once the suggester has one ready
        token = schedule.reserve(decision, params)
        return params, {Rung.TAG: decision.rung.to_tag()}, token

    def _abandon_held(self, mirror: StudyMirror, worker_id: str) -> None:
        """End the attempts ``worker_id`` holds as LOST: it asked for a trial again, so it
        restarted (see :meth:`hpsearch.oracle.Oracle.ask`); each trial is retried as its
        next attempt."""
        with mirror.cond:
            held = [(n, mirror.running[n][1]) for n in mirror.by_worker.get(worker_id, ())]
        for number, attempt in held:
            try:
                trial = self.store.fail_trial(
                    mirror.name,
                    number,
                    attempt,
                    f"worker {worker_id} asked for a new trial while holding this one: it "
                    "restarted",
                    retry=True,
                    lost=True,
                )
            except StaleAttemptError:  # it ended meanwhile: the mirror was behind
                mirror.resync(self.store)
                continue
            logger.info(
                "attempt given up: its worker restarted study=%s number=%d attempt=%d "
                "worker=%s state=%s",
                mirror.name,
                number,
                attempt,
                worker_id,
                trial.state.value,
            )
            self.after_end(mirror, trial, attempt)

    def _finish_if_done(self, mirror: StudyMirror) -> bool:
        budget = mirror.config.budget
        reason = None
        if budget.max_failed_trials is not None and mirror.failed >= budget.max_failed_trials:
            reason = f"max_failed_trials={budget.max_failed_trials} reached"
        elif mirror.total >= budget.max_trials and not mirror.active and mirror.waiting == 0:
            reason = f"max_trials={budget.max_trials} done"
        elif (
            mirror.schedule is not None
            and not mirror.active
            and mirror.waiting == 0
            and mirror.schedule.next(ongoing=False).kind == "done"
        ):
            reason = "every bracket of the schedule done"
        if reason is None:
            return False
        if not mirror.finished:
            study = self.store.finish_study(mirror.name, mirror.config)
            if study.state is not StudyState.COMPLETED:
                # Changed since this chief last read it (a raised budget, a stop): take the
                # stored study; the next call decides again under it.
                mirror.adopt(study)
                return mirror.finished
            mirror.state = StudyState.COMPLETED
            mirror.buffer.clear()
            logger.info(
                "study finished study=%s reason=%r completed=%d failed=%d",
                mirror.name,
                reason,
                mirror.completed,
                mirror.failed,
            )
            mirror.cond.notify_all()
        return True


__all__ = ["Scheduler"]
