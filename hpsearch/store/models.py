"""SQLAlchemy 2 typed models of the study store.

Times are floats, seconds since the epoch, read from the database clock
(:func:`hpsearch.store.engine.db_now`).  JSON columns hold plain dicts.  The schema is
created and changed only by the Alembic revisions in ``hpsearch/store/migrations``; these
models must match the newest revision (a test compares them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Base of every hpsearch table."""


class StudyRow(Base):
    """A study.  ``config`` is ``StudyConfig.to_dict()``; ``goal``, ``lease_seconds`` and
    ``max_attempts`` repeat three of its fields so that SQL can use them directly."""

    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("name", name="uq_studies_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    goal: Mapped[str] = mapped_column(String(16))
    lease_seconds: Mapped[float] = mapped_column(Double)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Trials are numbered 0..trial_count-1; bumping this counter allocates the next number.
    trial_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    # What users write on the study: a note and key -> value tags (NULL: none yet).
    note: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TrialRow(Base):
    """A trial: one parameter set, run by one or more attempts until it finishes."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
        Index("ix_trials_study_state_number", "study_id", "state", "number"),
        Index("ix_trials_state_lease", "state", "lease_expires_at"),
        Index("ix_trials_study_worker", "study_id", "worker_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE", name="fk_trials_study")
    )
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[float | None] = mapped_column(Double)
    value: Mapped[float | None] = mapped_column(Double)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    failure_message: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    completed_at: Mapped[float | None] = mapped_column(Double)
    # Why a COMPLETED trial is infeasible (NULL: feasible); migration 0004.
    infeasible_reason: Mapped[str | None] = mapped_column(Text)


class AttemptRow(Base):
    """One attempt of a trial: one lease held by one worker, and how it ended."""

    __tablename__ = "trial_attempts"
    __table_args__ = (UniqueConstraint("trial_id", "attempt", name="uq_trial_attempts_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE", name="fk_trial_attempts_trial")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    failure_message: Mapped[str | None] = mapped_column(Text)


class MeasurementRow(Base):
    """An intermediate measurement reported by an attempt at a step."""

    __tablename__ = "measurements"
    __table_args__ = (
        UniqueConstraint("trial_id", "attempt", "step", name="uq_measurements_step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE", name="fk_measurements_trial")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Double)


class WorkerRow(Base):
    """A worker that talked to the chief, and when it was last heard from."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    host: Mapped[str | None] = mapped_column(String(256))
    last_seen: Mapped[float] = mapped_column(Double)
    info: Mapped[dict[str, Any]] = mapped_column(JSON)


class ChiefLeaseRow(Base):
    """The fencing lease of the chief serving this database (one row, ``name='chief'``).

    ``epoch`` grows by one each time a chief takes the lease; a chief whose renewal finds
    another holder or epoch has been fenced and must stop serving.
    """

    __tablename__ = "chief_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    epoch: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Double)
    acquired_at: Mapped[float] = mapped_column(Double)
    renewed_at: Mapped[float] = mapped_column(Double)
