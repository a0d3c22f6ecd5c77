"""Plain value types for what the store keeps: studies, trials, measurements, workers.

The store returns these; the oracle, the service, the CLI and the dashboard read them.
They carry no database session and no behaviour beyond simple derived facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hpsearch.space import Params, Rung, StudyConfig

#: Keys of a trial's ``tags`` that hold what users write on it: its note and its own tags
#: (``{"user_tags": {"key": "value"}}``), apart from the keys hpsearch sets (``fidelity``,
#: artifact directories, Vertex AI ids).
NOTE_TAG = "note"
USER_TAGS_TAG = "user_tags"
#: Tag of a trial queued with known parameters (warm start), not suggested by the search.
ENQUEUED_TAG = "enqueued"


class TrialState(str, Enum):
    """Life cycle of a trial.

    WAITING -> RUNNING -> COMPLETED | FAILED | STOPPED, and RUNNING -> WAITING when an
    attempt is lost (lease expired) or fails and the study allows another attempt.
    """

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED)


class AttemptState(str, Enum):
    """Outcome of one attempt of a trial (one lease held by one worker)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    LOST = "LOST"  # the lease expired: the worker died or was cut off
    STOPPED = "STOPPED"


class StudyState(str, Enum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"  # budget spent; asking for trials answers "finished"
    STOPPED = "STOPPED"  # stopped by a user


@dataclass(frozen=True, slots=True)
class Study:
    id: int
    name: str
    config: StudyConfig
    state: StudyState
    created_at: float  # seconds since the epoch, database clock
    updated_at: float
    note: str | None = None  # free text a user wrote on the study
    user_tags: dict[str, str] = field(default_factory=dict)  # a user's key -> value labels


@dataclass(frozen=True, slots=True)
class Annotations:
    """What users write on a study or a trial: a free-text note and key -> value tags."""

    note: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trial:
    study_id: int
    number: int  # 0-based, unique within the study, allocated in creation order
    state: TrialState
    params: Params
    attempt: int  # 0 while never claimed; the running or last attempt otherwise
    worker_id: str | None  # holder of the current lease, or who ran the last attempt
    lease_expires_at: float | None  # database clock, seconds since the epoch
    value: float | None  # final objective value (COMPLETED trials)
    metrics: dict[str, float] = field(default_factory=dict)
    failure_message: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # free-form (e.g. Keras Tuner trial id)
    #: Why a COMPLETED trial is infeasible (it broke a constraint of the study, or said it
    #: was, as Vertex AI's INFEASIBLE); None for a feasible trial.
    infeasible_reason: str | None = None

    @property
    def feasible(self) -> bool:
        """Whether the trial kept the study's constraints (a COMPLETED trial's result
        counts as the best, or on the front, only then)."""
        return self.infeasible_reason is None

    @property
    def fidelity(self) -> Rung | None:
        """The trial's budget in a multi-fidelity study (None otherwise)."""
        return Rung.from_tags(self.tags)

    @property
    def note(self) -> str | None:
        """The note a user wrote on this trial (None if none)."""
        note = self.tags.get(NOTE_TAG)
        return note if isinstance(note, str) else None

    @property
    def user_tags(self) -> dict[str, str]:
        """The tags a user set on this trial (hpsearch's own tags are not among them)."""
        tags = self.tags.get(USER_TAGS_TAG)
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


@dataclass(frozen=True, slots=True)
class Attempt:
    trial_number: int
    attempt: int
    worker_id: str | None
    state: AttemptState
    started_at: float
    ended_at: float | None
    failure_message: str | None


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    trial_number: int
    attempt: int
    step: int
    metrics: dict[str, float]
    created_at: float


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    host: str | None
    last_seen: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StudySnapshot:
    """A whole study, as read in one transaction to be copied to another database."""

    study: Study
    trial_count: int  # trial numbers allocated so far (the next trial's number)
    trials: list[Trial]
    attempts: list[Attempt]
    measurements: list[MeasurementRecord]


@dataclass(frozen=True, slots=True)
class StudySummary:
    study: Study
    counts: dict[TrialState, int]
    best_value: float | None
    last_activity: float | None
