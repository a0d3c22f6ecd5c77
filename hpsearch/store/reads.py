"""Read-only statements for the dashboard, built once per dialect next to the store's.

The store's interface returns whole records one study at a time; the dashboard reads
other shapes: one grouped pass over every study, a trial table sorted, filtered and
counted in SQL, narrow scans in trial order that stay fast at 10,000 trials.  Those
statements live here, beside the schema (``models``) and the store's own statements
(``sql``), so that whoever changes a table finds every statement that reads it in this
package.  Where the store already has the statement the dashboard needs, :class:`Reads`
holds the store's object itself, not a copy.  Nothing here writes.

Bind parameters are named as in ``sql``: ``b_study`` (a study name), ``b_study_id``,
``b_number``, ``b_trial_id``, ``b_limit``, ``b_numbers`` (a list of trial numbers)
and ``b_now`` (the database time a request read first, so that every lease in
one answer is judged against the same instant).

The trial table's filters and sort vary with each request, so :func:`trial_filter`,
:func:`count_trials` and :func:`trial_numbers` build those statements per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Double, Integer, Select, and_, bindparam, distinct, func, select
from sqlalchemy.sql.elements import ColumnElement

from hpsearch.store.engine import db_now
from hpsearch.store.sql import (
    COMPLETED,
    MEASUREMENTS,
    RUNNING,
    STOPPED,
    STUDIES,
    TRIALS,
    M,
    S,
    Statements,
    T,
    W,
    statements,
)


@cache
def reads(dialect: str) -> Reads:
    """The dashboard's statements for ``dialect`` (``"sqlite"`` or ``"postgresql"``),
    built once and sharing the store's where they are the same."""
    return Reads(statements(dialect))


class Reads:
    """Every fixed statement the dashboard runs, for one dialect."""

    def __init__(self, store: Statements) -> None:
        study = T.study_id == bindparam("b_study_id", type_=Integer)
        live_lease = and_(
            T.state == RUNNING, T.lease_expires_at > bindparam("b_now", type_=Double)
        )
        completed = (study, T.state == COMPLETED, T.value.is_not(None))
        self.now = select(db_now())

        # -- studies ----------------------------------------------------------------------
        #: The store's: a study's columns by ``b_study``.
        self.study_by_name = store.study_by_name
        #: The store's: every study's columns, by name.
        self.all_studies = store.all_studies
        #: The store's: (study id, state, count, min value, max value, last update) of
        #: every study's trials, grouped by study and state.
        self.study_stats = store.study_stats
        #: The store's: (study id, state, count) of study ``b_study``.
        self.study_counts = store.count
        # Not the store's ``best``: on PostgreSQL its ORDER BY the goal's CASE is slower on
        # a large study than a plain ORDER BY value with the goal known (measured:
        # benchmarks/results/design_figures.md, "Dashboard best trial: a plain ORDER BY").
        best = (
            select(T.number, T.value, T.params)
            .where(*completed, T.infeasible_reason.is_(None))
            .limit(1)
        )
        self.highest_value = best.order_by(T.value.desc(), T.number)
        self.lowest_value = best.order_by(T.value.asc(), T.number)
        self.workers_alive_by_study = (
            select(T.study_id, func.count(distinct(T.worker_id)))
            .where(live_lease)
            .group_by(T.study_id)
        )
        self.workers_alive = select(func.count(distinct(T.worker_id))).where(study, live_lease)
        # What a study's revision is made of: trial rows change their updated_at, but
        # measurements do not touch their trial's row: the newest measurement id catches them.
        self.trials_revision = select(func.count(), func.max(T.updated_at)).where(study)
        self.newest_measurement = (
            select(func.max(M.id)).join(TRIALS, T.id == M.trial_id).where(study)
        )

        # -- plots ------------------------------------------------------------------------
        # Narrow on purpose (no parameters to decode): the history is the first plot drawn.
        self.history = (
            select(T.number, T.state, T.value, T.infeasible_reason)
            .where(study, T.state.in_((COMPLETED, STOPPED)), T.value.is_not(None))
            .order_by(T.number)
        )
        #: Every COMPLETED trial's metrics and feasibility: the Pareto front plot.
        self.front = (
            select(T.number, T.metrics, T.infeasible_reason)
            .where(study, T.state == COMPLETED)
            .order_by(T.number)
        )
        self.completed_params = (
            select(T.number, T.value, T.params).where(*completed).order_by(T.number)
        )
        # The ``b_limit`` highest-numbered trials with any measurement, then their
        # measurements, latest attempt first within each trial.
        measured = (
            select(T.id)
            .where(study, select(M.id).where(M.trial_id == T.id).exists())
            .order_by(T.number.desc())
            .limit(bindparam("b_limit", type_=Integer))
            .subquery()
        )
        self.curves = (
            select(T.number, T.state, M.attempt, M.step, M.metrics)
            .join(MEASUREMENTS, M.trial_id == T.id)
            .where(T.id.in_(select(measured.c.id)))
            .order_by(T.number, M.attempt.desc(), M.step)
        )

        # -- trials -----------------------------------------------------------------------
        #: The store's: one trial's columns by ``b_study`` and ``b_number``.
        self.trial = store.trial
        #: The store's: that trial's attempts, in order.
        self.attempts = store.attempts
        self.measurements = (
            select(M.attempt, M.step, M.metrics, M.created_at)
            .where(M.trial_id == bindparam("b_trial_id", type_=Integer))
            .order_by(M.attempt, M.step)
        )
        # The second step of a trial page: the full rows of the page's numbers only.
        self.trial_rows = select(
            T.number,
            T.state,
            T.value,
            T.params,
            T.metrics,
            T.attempt,
            T.worker_id,
            T.created_at,
            T.started_at,
            T.completed_at,
            T.failure_message,
            T.tags,
            T.infeasible_reason,
        ).where(study, T.number.in_(bindparam("b_numbers", expanding=True)))

        # -- workers ----------------------------------------------------------------------
        self.workers = select(W.id, W.host, W.last_seen, W.info).order_by(W.last_seen.desc())
        self.running_trials = (
            select(T.worker_id, S.name, T.number, T.attempt, T.started_at, T.lease_expires_at)
            .join(STUDIES, S.id == T.study_id)
            .where(T.state == RUNNING, T.worker_id.is_not(None))
            .order_by(T.started_at)
        )


def trial_filter(
    study_id: int,
    states: Sequence[str] = (),
    ranges: Sequence[tuple[str, float | None, float | None]] = (),
    equals: Sequence[tuple[str, str]] = (),
) -> ColumnElement[bool]:
    """The trial table's WHERE: one study's trials in any of ``states``, with parameters
    within ``(name, min, max)`` compared as numbers and equal to ``(name, value)`` as text."""
    where: list[ColumnElement[bool]] = [T.study_id == study_id]
    if states:
        where.append(T.state.in_(states))
    for param, low, high in ranges:
        column = T.params[param].as_float()
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    for param, value in equals:
        where.append(T.params[param].as_string() == value)
    return and_(*where)


def count_trials(where: ColumnElement[bool]) -> Select[Any]:
    """How many trials ``where`` matches."""
    return select(func.count()).select_from(TRIALS).where(where)


def trial_numbers(
    where: ColumnElement[bool],
    sort: str,
    *,
    numeric: bool,
    descending: bool,
    offset: int,
    limit: int,
) -> Select[Any]:
    """One page of the numbers of the trials ``where`` matches, sorted by ``sort``.

    ``sort`` is a trial column, ``duration`` or ``param:<name>`` (compared as a number
    when ``numeric``, else as text).  Only the numbers: a narrow scan skips ``offset``
    rows cheaply, and :attr:`Reads.trial_rows` then reads the page's full rows.
    """
    key = _sort_key(sort, numeric)
    ordered = key.desc() if descending else key.asc()
    order = (
        [ordered]
        if sort == "number"  # never NULL: the (study_id, number) index serves it
        else [key.is_(None), ordered, T.number.desc()]  # NULLs last either way
    )
    return select(T.number).where(where).order_by(*order).offset(offset).limit(limit)


def _sort_key(sort: str, numeric: bool) -> ColumnElement[Any]:
    if sort.startswith("param:"):
        field = T.params[sort[len("param:") :]]
        return field.as_float() if numeric else field.as_string()
    if sort == "duration":
        return T.completed_at - T.started_at
    column: ColumnElement[Any] = T[sort]
    return column


__all__ = ["Reads", "count_trials", "reads", "trial_filter", "trial_numbers"]
