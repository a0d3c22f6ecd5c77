"""The store's SQL statements, built once per dialect with bind parameters.

Building a SQLAlchemy statement costs more than running it on SQLite, so every statement
on a hot path is built here once and executed with a parameter dict.  Bind parameters are
named ``b_<what>`` (SQLAlchemy reserves column names in INSERT/UPDATE): ``b_study`` (a
study name), ``b_number``, ``b_attempt``, ``b_worker``, ``b_lease`` (seconds, or NULL for
the study's own lease), ``b_trial_id`` and so on.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from hpsearch.store.engine import db_now
from hpsearch.store.models import AttemptRow, MeasurementRow, StudyRow, TrialRow, WorkerRow

STUDIES = cast(Table, StudyRow.__table__)
TRIALS = cast(Table, TrialRow.__table__)
ATTEMPTS = cast(Table, AttemptRow.__table__)
MEASUREMENTS = cast(Table, MeasurementRow.__table__)
WORKERS = cast(Table, WorkerRow.__table__)

RUNNING = "RUNNING"
WAITING = "WAITING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
STOPPED = "STOPPED"

S = STUDIES.c
T = TRIALS.c
A = ATTEMPTS.c
M = MEASUREMENTS.c
W = WORKERS.c

STUDY_COLUMNS = (S.id, S.name, S.config, S.state, S.created_at, S.updated_at, S.note, S.tags)
TRIAL_COLUMNS = tuple(TRIALS.c)


def study_id_by_name() -> Any:
    """``(SELECT id FROM studies WHERE name = :study)``."""
    return select(S.id).where(S.name == bindparam("b_study", type_=String)).scalar_subquery()


def running_attempt_guard(join_study: bool = False) -> list[ColumnElement[bool]]:
    """The guard of every transition out of RUNNING and of lease renewal: the trial is
    RUNNING at this attempt.  Not the lease: a report of the running attempt counts even
    after its lease passed, as long as the sweeper has not handed the trial on (then the
    store's late-report rules apply, see ``Store._refuse``).

    ``join_study`` (PostgreSQL) joins the study by name instead of a scalar subquery: with
    the study id unknown at plan time, PostgreSQL's (generic, prepared) plan picked
    ``ix_trials_state_lease`` for ``state='RUNNING' AND lease_expires_at > now`` and walked
    the index entries every recently finished trial left there until vacuum, so each
    report got slower as a busy study grew (measured: benchmarks/results/design_figures.md,
    "Running-attempt guard joins the study by name on PostgreSQL").  Joined, the plan is
    the unique (study_id, number) index: one row.
    """
    if join_study:
        study = [T.study_id == S.id, S.name == bindparam("b_study", type_=String)]
    else:
        study = [T.study_id == study_id_by_name()]
    return [
        *study,
        T.number == bindparam("b_number", type_=Integer),
        T.state == RUNNING,
        T.attempt == bindparam("b_attempt", type_=Integer),
    ]


def _lease_end() -> Any:
    """db now + :lease, or + the study's lease when :lease is NULL (correlated)."""
    study_lease = (
        select(S.lease_seconds)
        .where(S.id == T.study_id)
        .correlate_except(STUDIES)
        .scalar_subquery()
    )
    return db_now() + func.coalesce(bindparam("b_lease", type_=Double), study_lease)


class Statements:
    """Every prepared statement of the store for one dialect."""

    def __init__(self, postgres: bool) -> None:
        dialect_insert = postgresql.insert if postgres else sqlite.insert
        now = db_now()

        # -- studies ------------------------------------------------------------------------
        self.study_by_name = select(*STUDY_COLUMNS).where(S.name == bindparam("b_study"))
        self.study_exists = select(S.id).where(S.name == bindparam("b_study"))
        self.all_studies = select(*STUDY_COLUMNS).order_by(S.name)
        self.study_stats = select(
            T.study_id,
            T.state,
            func.count(),
            # The best value counts feasible trials only (NULL for the others).
            func.min(case((T.infeasible_reason.is_(None), T.value))),
            func.max(case((T.infeasible_reason.is_(None), T.value))),
            func.max(T.updated_at),
        ).group_by(T.study_id, T.state)
        declared: dict[str, Any] = {
            "name": bindparam("b_study", type_=String),
            "config": bindparam("b_config", type_=JSON),
            "state": bindparam("b_state", type_=String),
            "goal": bindparam("b_goal", type_=String),
            "lease_seconds": bindparam("b_lease_seconds", type_=Double),
            "max_attempts": bindparam("b_max_attempts", type_=Integer),
        }
        self.create_study = (
            dialect_insert(STUDIES)
            .values(**declared, trial_count=0, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(*STUDY_COLUMNS)
        )
        self.study_config_for_update = (
            select(S.config).where(S.name == bindparam("b_study")).with_for_update()
        )
        self.set_study_config = (
            update(STUDIES)
            .where(S.name == bindparam("b_study"))
            .values(config=bindparam("b_config", type_=JSON), updated_at=now)
            .returning(*STUDY_COLUMNS)
        )
        self.set_study_state = (
            update(STUDIES)
            .where(S.name == bindparam("b_study"))
            .values(state=bindparam("b_state", type_=String), updated_at=now)
            .returning(*STUDY_COLUMNS)
        )
        self.delete_study = delete(STUDIES).where(S.name == bindparam("b_study"))
        # -- the study life cycle: rare writes, each read-check-write under the row's lock
        self.study_with_count = select(*STUDY_COLUMNS, S.trial_count).where(
            S.name == bindparam("b_study")
        )
        self.study_for_update = self.study_with_count.with_for_update()
        self.update_study = (
            update(STUDIES)
            .where(S.id == bindparam("b_study_id", type_=Integer))
            .values(
                config=bindparam("b_config", type_=JSON),
                state=bindparam("b_state", type_=String),
                lease_seconds=bindparam("b_lease_seconds", type_=Double),
                max_attempts=bindparam("b_max_attempts", type_=Integer),
                updated_at=now,
            )
            .returning(*STUDY_COLUMNS)
        )
        self.annotate_study = (
            update(STUDIES)
            .where(S.id == bindparam("b_study_id", type_=Integer))
            .values(
                note=bindparam("b_note", type_=String),
                tags=bindparam("b_tags", type_=JSON),
                updated_at=now,
            )
            .returning(*STUDY_COLUMNS)
        )
        self.trial_for_update = (
            select(*TRIAL_COLUMNS)
            .where(T.study_id == study_id_by_name(), T.number == bindparam("b_number"))
            .with_for_update()
        )
        self.set_trial_tags = (
            update(TRIALS)
            .where(T.id == bindparam("b_trial_id", type_=Integer))
            .values(tags=bindparam("b_tags", type_=JSON), updated_at=now)
            .returning(*TRIAL_COLUMNS)
        )
        # -- copying a study whole (``Store.snapshot_study`` / ``Store.restore_study``) ----
        self.study_attempts = (
            select(
                T.number,
                A.attempt,
                A.worker_id,
                A.state,
                A.started_at,
                A.ended_at,
                A.failure_message,
            )
            .join(TRIALS, T.id == A.trial_id)
            .where(T.study_id == study_id_by_name())
            .order_by(T.number, A.attempt)
        )
        self.restore_study = (
            dialect_insert(STUDIES)
            .values(
                **declared,
                trial_count=bindparam("b_count", type_=Integer),
                created_at=bindparam("b_created_at", type_=Double),
                updated_at=now,
                note=bindparam("b_note", type_=String),
                tags=bindparam("b_tags", type_=JSON),
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(*STUDY_COLUMNS)
        )
        self.restore_trials = insert(TRIALS)
        self.trial_ids = select(T.number, T.id).where(
            T.study_id == bindparam("b_study_id", type_=Integer)
        )
        self.restore_attempts = insert(ATTEMPTS)
        self.restore_measurements = insert(MEASUREMENTS)

        # -- creating and claiming trials ------------------------------------------------
        # The counter on the study row allocates trial numbers: the UPDATE takes the row's
        # lock, so concurrent creators queue; uq_trials_study_number is the backstop.
        self.next_number = (
            update(STUDIES)
            .where(S.name == bindparam("b_study"))
            .values(trial_count=S.trial_count + bindparam("b_count", type_=Integer))
            .returning(S.id, S.trial_count, S.lease_seconds)
        )
        trial_values: dict[str, Any] = {
            "study_id": bindparam("b_study_id", type_=Integer),
            "number": bindparam("b_number", type_=Integer),
            "params": bindparam("b_params", type_=JSON),
            "metrics": bindparam("b_metrics", type_=JSON),
            "tags": bindparam("b_tags", type_=JSON),
            "created_at": now,
            "updated_at": now,
        }
        self.insert_waiting_trial = (
            insert(TRIALS)
            .values(state=WAITING, attempt=0, **trial_values)
            .returning(*TRIAL_COLUMNS)
        )
        self.insert_running_trial = (
            insert(TRIALS)
            .values(
                state=RUNNING,
                attempt=1,
                worker_id=bindparam("b_worker", type_=String),
                lease_expires_at=now + bindparam("b_lease", type_=Double),
                started_at=now,
                **trial_values,
            )
            .returning(*TRIAL_COLUMNS)
        )
        self.insert_attempt = insert(ATTEMPTS).values(
            trial_id=bindparam("b_trial_id", type_=Integer),
            attempt=bindparam("b_attempt", type_=Integer),
            worker_id=bindparam("b_worker", type_=String),
            state=RUNNING,
            started_at=bindparam("b_started_at", type_=Double),
        )
        waiting = TRIALS.alias("waiting")
        # FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite has one writer at a time anyway): two
        # claimers never wait on, or fight over, the same row.
        pick = (
            select(waiting.c.id)
            .where(waiting.c.study_id == study_id_by_name(), waiting.c.state == WAITING)
            .order_by(waiting.c.number)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        self.claim = (
            update(TRIALS)
            .where(T.id == pick, T.state == WAITING)
            .values(
                state=RUNNING,
                attempt=T.attempt + 1,
                worker_id=bindparam("b_worker", type_=String),
                lease_expires_at=_lease_end(),
                failure_message=None,
                started_at=now,
                updated_at=now,
            )
            .returning(*TRIAL_COLUMNS)
        )
        self.renew = (
            update(TRIALS)
            .where(*running_attempt_guard(postgres))
            .values(lease_expires_at=_lease_end(), updated_at=now)
            .returning(*TRIAL_COLUMNS)
        )

        # -- leaving RUNNING: one guarded UPDATE each ---------------------------------------
        ended = {"lease_expires_at": None, "updated_at": now}
        self.complete = (
            update(TRIALS)
            .where(*running_attempt_guard(postgres))
            .values(
                state=COMPLETED,
                value=bindparam("b_value", type_=Double),
                metrics=bindparam("b_metrics", type_=JSON),
                infeasible_reason=bindparam("b_infeasible", type_=Text),
                completed_at=now,
                **ended,
            )
            .returning(*TRIAL_COLUMNS)
        )
        max_attempts = (
            select(S.max_attempts)
            .where(S.id == T.study_id)
            .correlate_except(STUDIES)
            .scalar_subquery()
        )
        retried = and_(bindparam("b_retry", type_=Boolean), T.attempt < max_attempts)
        self.fail = (
            update(TRIALS)
            .where(*running_attempt_guard(postgres))
            .values(
                state=case((retried, WAITING), else_=FAILED),
                failure_message=bindparam("b_message", type_=String),
                completed_at=case((retried, None), else_=now),
                **ended,
            )
            .returning(*TRIAL_COLUMNS)
        )
        self.stop = (
            update(TRIALS)
            .where(*running_attempt_guard(postgres))
            .values(
                state=STOPPED,
                value=bindparam("b_value", type_=Double),
                completed_at=now,
                **ended,
            )
            .returning(*TRIAL_COLUMNS)
        )
        self.end_attempt = (
            update(ATTEMPTS)
            .where(
                A.trial_id == bindparam("b_trial_id", type_=Integer),
                A.attempt == bindparam("b_attempt", type_=Integer),
            )
            .values(
                state=bindparam("b_state", type_=String),
                ended_at=now,
                failure_message=bindparam("b_message", type_=String),
            )
        )
        # After a guarded UPDATE matched nothing: the study, the trial and that attempt.
        self.refusal_facts = (
            select(
                S.id.label("study_pk"),
                *TRIAL_COLUMNS,
                A.state.label("attempt_state"),
                A.failure_message.label("attempt_failure"),
                A.worker_id.label("attempt_worker"),
            )
            .select_from(STUDIES)
            .outerjoin(
                TRIALS,
                and_(T.study_id == S.id, T.number == bindparam("b_number", type_=Integer)),
            )
            .outerjoin(
                ATTEMPTS,
                and_(A.trial_id == T.id, A.attempt == bindparam("b_attempt", type_=Integer)),
            )
            .where(S.name == bindparam("b_study"))
        )

        # -- late reports (see Store._refuse): each guarded by the state just read ------
        seen = [
            T.id == bindparam("b_trial_id", type_=Integer),
            T.state == bindparam("b_seen_state", type_=String),
            T.attempt == bindparam("b_seen_attempt", type_=Integer),
        ]
        self.late_complete = (
            update(TRIALS)
            .where(*seen)
            .values(
                state=COMPLETED,
                value=bindparam("b_value", type_=Double),
                metrics=bindparam("b_metrics", type_=JSON),
                infeasible_reason=bindparam("b_infeasible", type_=Text),
                attempt=bindparam("b_attempt", type_=Integer),
                worker_id=bindparam("b_worker", type_=String),
                failure_message=None,
                completed_at=now,
                **ended,
            )
            .returning(*TRIAL_COLUMNS)
        )
        self.revive = (
            update(TRIALS)
            .where(*seen)
            .values(
                state=RUNNING,
                worker_id=bindparam("b_worker", type_=String),
                lease_expires_at=_lease_end(),
                failure_message=None,
                completed_at=None,
                updated_at=now,
            )
            .returning(*TRIAL_COLUMNS)
        )
        self.reopen_attempt = (
            update(ATTEMPTS)
            .where(
                A.trial_id == bindparam("b_trial_id", type_=Integer),
                A.attempt == bindparam("b_attempt", type_=Integer),
            )
            .values(state=RUNNING, ended_at=None, failure_message=None)
        )
        self.late_measurement = (
            dialect_insert(MEASUREMENTS)
            .values(
                trial_id=bindparam("b_trial_id", type_=Integer),
                attempt=bindparam("b_attempt", type_=Integer),
                step=bindparam("b_step", type_=Integer),
                metrics=bindparam("b_metrics", type_=JSON),
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["trial_id", "attempt", "step"])
            .returning(M.metrics, M.created_at)
        )

        # -- lease expiry -----------------------------------------------------------------
        lapsed = (
            select(T.id, T.attempt, T.worker_id, T.lease_expires_at, S.max_attempts)
            .join(STUDIES, S.id == T.study_id)
            .where(T.state == RUNNING, T.lease_expires_at <= now)
        )
        self.lapsed_all = lapsed.with_for_update(of=TRIALS, skip_locked=True)
        self.lapsed_in_study = lapsed.where(T.study_id == study_id_by_name()).with_for_update(
            of=TRIALS, skip_locked=True
        )
        new_state = bindparam("b_state", type_=String)
        self.expire = (
            update(TRIALS)
            .where(
                T.id == bindparam("b_trial_id", type_=Integer),
                T.state == RUNNING,
                T.attempt == bindparam("b_attempt", type_=Integer),
                T.lease_expires_at <= now,
            )
            .values(
                state=new_state,
                lease_expires_at=None,
                failure_message=bindparam("b_message", type_=String),
                updated_at=now,
                completed_at=case((new_state == FAILED, now), else_=None),
            )
            .returning(*TRIAL_COLUMNS)
        )

        # -- reading trials ---------------------------------------------------------------
        self.trial = select(*TRIAL_COLUMNS).where(
            T.study_id == study_id_by_name(), T.number == bindparam("b_number")
        )
        self.trial_exists = select(T.id).where(
            T.study_id == study_id_by_name(), T.number == bindparam("b_number")
        )
        self.count = (
            select(S.id, T.state, func.count(T.id))
            .select_from(STUDIES)
            .outerjoin(TRIALS, T.study_id == S.id)
            .where(S.name == bindparam("b_study"))
            .group_by(S.id, T.state)
        )
        objective = case((S.goal == "minimize", T.value), else_=-T.value)
        # With the study's declaration: a study with several metrics has a front instead
        # (when it has no such trial, neither has a front: one statement either way).
        self.best = (
            select(*TRIAL_COLUMNS, S.config.label("study_config"))
            .join(STUDIES, S.id == T.study_id)
            .where(
                S.name == bindparam("b_study"),
                T.state == COMPLETED,
                T.value.is_not(None),
                T.infeasible_reason.is_(None),
            )
            .order_by(objective, T.number)
            .limit(bindparam("b_n", type_=Integer))
        )
        self.running_of = (
            select(*TRIAL_COLUMNS)
            .where(
                T.study_id == study_id_by_name(),
                T.worker_id == bindparam("b_worker"),
                T.state == RUNNING,
                T.lease_expires_at > now,
            )
            .order_by(T.number)
            .limit(1)
        )
        self.attempts = (
            select(A.attempt, A.worker_id, A.state, A.started_at, A.ended_at, A.failure_message)
            .join(TRIALS, T.id == A.trial_id)
            .where(T.study_id == study_id_by_name(), T.number == bindparam("b_number"))
            .order_by(A.attempt)
        )

        # -- measurements -----------------------------------------------------------------
        source = select(
            T.id,
            bindparam("b_attempt", type_=Integer),
            bindparam("b_step", type_=Integer),
            bindparam("b_metrics", type_=JSON),
            now,
        ).where(*running_attempt_guard(postgres))
        self.add_measurement = (
            dialect_insert(MEASUREMENTS)
            .from_select(["trial_id", "attempt", "step", "metrics", "created_at"], source)
            .on_conflict_do_nothing(index_elements=["trial_id", "attempt", "step"])
            .returning(M.metrics, M.created_at)
        )
        self.measurement = (
            select(M.metrics, M.created_at)
            .join(TRIALS, T.id == M.trial_id)
            .where(
                T.study_id == study_id_by_name(),
                T.number == bindparam("b_number"),
                M.attempt == bindparam("b_attempt"),
                M.step == bindparam("b_step"),
            )
        )

        # -- workers ------------------------------------------------------------------------
        upsert = dialect_insert(WORKERS).values(
            id=bindparam("b_worker", type_=String),
            host=bindparam("b_host", type_=String),
            last_seen=now,
            info=bindparam("b_info", type_=JSON),
        )
        self.touch_worker = upsert.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "last_seen": upsert.excluded.last_seen,
                "host": func.coalesce(upsert.excluded.host, W.host),
                "info": case(
                    (bindparam("b_has_info", type_=Boolean), upsert.excluded.info), else_=W.info
                ),
            },
        ).returning(W.id, W.host, W.last_seen, W.info)
        self.workers = select(W.id, W.host, W.last_seen, W.info).order_by(W.id)

        # -- PostgreSQL: one round trip per hot-path write (None on SQLite, which has no
        # data-modifying WITH; there the store runs the statements above one by one) ---
        self.create_running_one: Any = None
        self.leave_running_one: dict[int, Any] = {}
        if postgres:
            self.create_running_one = _one_statement_create_running(now)
            self.leave_running_one = {
                id(stmt): _one_statement_leave_running(stmt, now)
                for stmt in (self.complete, self.fail, self.stop)
            }


def _one_statement_create_running(now: Any) -> Any:
    """PostgreSQL: number allocation, RUNNING trial and its attempt row in one statement.

    ``WITH counter AS (UPDATE studies ... RETURNING), new_trial AS (INSERT INTO trials
    SELECT ... FROM counter RETURNING *), new_attempt AS (INSERT INTO attempts SELECT ...
    FROM new_trial) SELECT * FROM new_trial``: the same three writes as the SQLite path,
    one round trip.  The counter UPDATE still takes the study row's lock, so numbers stay
    gapless under concurrency.
    """
    counter = (
        update(STUDIES)
        .where(S.name == bindparam("b_study", type_=String))
        .values(trial_count=S.trial_count + 1)
        .returning(S.id, S.trial_count, S.lease_seconds)
        .cte("counter")
    )
    lease = func.coalesce(bindparam("b_lease", type_=Double), counter.c.lease_seconds)
    columns = {
        "study_id": counter.c.id,
        "number": counter.c.trial_count - 1,
        "params": bindparam("b_params", type_=JSON),
        "metrics": bindparam("b_metrics", type_=JSON),
        "tags": bindparam("b_tags", type_=JSON),
        "created_at": now,
        "updated_at": now,
        "state": literal(RUNNING, String),
        "attempt": literal(1, Integer),
        "worker_id": bindparam("b_worker", type_=String),
        "lease_expires_at": now + lease,
        "started_at": now,
    }
    new_trial = (
        insert(TRIALS)
        .from_select(list(columns), select(*columns.values()))
        .returning(*TRIAL_COLUMNS)
        .cte("new_trial")
    )
    new_attempt = insert(ATTEMPTS).from_select(
        ["trial_id", "attempt", "worker_id", "state", "started_at"],
        select(
            new_trial.c.id,
            new_trial.c.attempt,
            new_trial.c.worker_id,
            literal(RUNNING, String),
            new_trial.c.started_at,
        ),
    )
    return select(*new_trial.c).add_cte(new_attempt.cte("new_attempt"))


def _one_statement_leave_running(leave: Any, now: Any) -> Any:
    """PostgreSQL: a guarded UPDATE out of RUNNING and the end of its attempt row, in one
    statement (``WITH ended AS (UPDATE trials ... RETURNING *) UPDATE attempts ...``)."""
    ended = leave.cte("ended")
    end_attempt = (
        update(ATTEMPTS)
        .where(A.trial_id == ended.c.id, A.attempt == ended.c.attempt)
        .values(
            state=bindparam("b_state", type_=String),
            ended_at=now,
            failure_message=bindparam("b_message", type_=String),
        )
    )
    return select(*ended.c).add_cte(end_attempt.cte("ended_attempt"))


@cache
def statements(dialect: str) -> Statements:
    """The statements for ``dialect`` (``"sqlite"`` or ``"postgresql"``), built once."""
    return Statements(postgres=dialect == "postgresql")
