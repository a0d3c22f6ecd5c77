"""The study store: every study, trial, attempt, measurement and worker, in SQL.

This file fixes the public interface the oracle, CLI and dashboard code against.
(Bodies are being filled in; signatures and documented semantics are the contract.)

Rules (ARCHITECTURE.md):
- A result is committed before the call that reported it returns.
- A trial leaves RUNNING exactly once: one guarded ``UPDATE ... WHERE state='RUNNING'
  AND attempt=:attempt AND lease_expires_at > <db now>``.
- Reporting the same result twice returns the stored trial and changes nothing.
- Leases live on the database clock (``db_now()``), never the caller's clock.
- Trial numbers are unique per study and allocated without gaps under concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hpsearch.records import (
    Attempt,
    MeasurementRecord,
    Study,
    StudyState,
    StudySummary,
    Trial,
    TrialState,
    Worker,
)
from hpsearch.space import Params, Space, StudyConfig

DEFAULT_URL = "sqlite:///hpsearch.db"


class Store:
    """One database.  Thread-safe; one instance per process is enough."""

    def __init__(self, url: str = DEFAULT_URL, *, upgrade: bool = True) -> None:
        """Connect; on a new empty database apply the migrations (``upgrade=True``).

        An existing database at an older revision raises StorageError telling the user to
        run ``hpsearch db upgrade --storage URL``.
        """
        raise NotImplementedError

    def close(self) -> None: ...

    def db_now(self) -> float:
        """The database clock, seconds since the epoch."""
        raise NotImplementedError

    # -- studies ------------------------------------------------------------------------
    def create_study(self, config: StudyConfig, *, exist_ok: bool = False) -> Study:
        """AlreadyExistsError if the name is taken (unless ``exist_ok`` and configs match)."""
        raise NotImplementedError

    def get_study(self, name: str) -> Study:
        """NotFoundError if there is no such study."""
        raise NotImplementedError

    def list_studies(self) -> list[StudySummary]:
        raise NotImplementedError

    def update_space(self, name: str, space: Space) -> Study:
        """Replace a study's declared space (Keras Tuner's UpdateSpace merges then calls this)."""
        raise NotImplementedError

    def set_study_state(self, name: str, state: StudyState) -> Study:
        raise NotImplementedError

    def delete_study(self, name: str) -> None:
        raise NotImplementedError

    # -- trials -------------------------------------------------------------------------
    def create_trial(
        self,
        study: str,
        params: Params,
        *,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> Trial:
        """Insert a trial with the next number.

        Without ``worker_id`` it is WAITING (attempt 0).  With ``worker_id`` it is created
        RUNNING as attempt 1 with a lease of ``lease_seconds`` (default: the study's),
        atomically, so no other worker can claim it.
        """
        raise NotImplementedError

    def claim_trial(
        self, study: str, worker_id: str, *, lease_seconds: float | None = None
    ) -> Trial | None:
        """Claim the lowest-numbered WAITING trial: RUNNING, attempt+1, lease. None if none."""
        raise NotImplementedError

    def renew_lease(
        self, study: str, number: int, attempt: int, *, lease_seconds: float | None = None
    ) -> Trial:
        """Extend a running attempt's lease (a heartbeat).

        StaleAttemptError if the trial is not RUNNING at this attempt or its lease expired.
        """
        raise NotImplementedError

    def complete_trial(
        self,
        study: str,
        number: int,
        attempt: int,
        value: float,
        metrics: Mapping[str, float] | None = None,
    ) -> Trial:
        """RUNNING -> COMPLETED.  Idempotent for the same attempt; StaleAttemptError otherwise.

        InvalidArgumentError for a NaN/inf value or metric.
        """
        raise NotImplementedError

    def fail_trial(
        self, study: str, number: int, attempt: int, message: str, *, retry: bool = False
    ) -> Trial:
        """End an attempt as FAILED.  With ``retry`` and attempts left, the trial goes back
        to WAITING for another attempt; otherwise the trial is FAILED.  Idempotent."""
        raise NotImplementedError

    def stop_trial(
        self, study: str, number: int, attempt: int, *, value: float | None = None
    ) -> Trial:
        """RUNNING -> STOPPED (early stopping, study finished).  Idempotent."""
        raise NotImplementedError

    def expire_leases(self, study: str | None = None) -> list[Trial]:
        """Mark every RUNNING attempt whose lease has passed as LOST; each trial goes back to
        WAITING when it has attempts left (budget.max_attempts), else FAILED.  Returns the
        trials changed."""
        raise NotImplementedError

    def get_trial(self, study: str, number: int) -> Trial:
        raise NotImplementedError

    def list_trials(
        self,
        study: str,
        *,
        states: Sequence[TrialState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Trial]:
        """Trials by number."""
        raise NotImplementedError

    def count_trials(self, study: str) -> dict[TrialState, int]:
        raise NotImplementedError

    def best_trials(self, study: str, n: int = 1) -> list[Trial]:
        """COMPLETED trials ordered best first under the study's goal."""
        raise NotImplementedError

    def running_trial_of(self, study: str, worker_id: str) -> Trial | None:
        """The RUNNING trial whose lease this worker holds, if any."""
        raise NotImplementedError

    def list_attempts(self, study: str, number: int) -> list[Attempt]:
        raise NotImplementedError

    # -- measurements -------------------------------------------------------------------
    def add_measurement(
        self, study: str, number: int, attempt: int, step: int, metrics: Mapping[str, float]
    ) -> MeasurementRecord:
        """Record an intermediate measurement of a running attempt (idempotent per step)."""
        raise NotImplementedError

    def list_measurements(self, study: str, number: int | None = None) -> list[MeasurementRecord]:
        raise NotImplementedError

    # -- workers ------------------------------------------------------------------------
    def touch_worker(
        self, worker_id: str, *, host: str | None = None, info: Mapping[str, Any] | None = None
    ) -> Worker:
        raise NotImplementedError

    def list_workers(self) -> list[Worker]:
        raise NotImplementedError
