"""The study store: every study, trial, attempt, measurement and worker, in SQL.

The oracle, CLI and dashboard code against this interface.

Rules (ARCHITECTURE.md):
- A result is committed before the call that reported it returns.
- A trial leaves RUNNING exactly once: one guarded ``UPDATE ... WHERE state='RUNNING'
  AND attempt=:attempt``.
- Reporting the same result twice returns the stored trial and changes nothing.
- A result late for its lease counts unless another attempt completed the trial (the
  late-report rules of :meth:`Store._refuse`, also in docs/design.md).
- Leases live on the database clock (``db_now()``), never the caller's clock.
- Trial numbers are unique per study and allocated without gaps under concurrency.

How: every public method is one short transaction of one to three prepared statements
(``UPDATE ... RETURNING`` rather than read-modify-write, see :mod:`hpsearch.store.sql`),
retried when it loses a lock race (:func:`hpsearch.store.transactions.run_transaction`).
Methods return the value types of :mod:`hpsearch.records`, never ORM objects.  Expired
leases are collected by :meth:`Store.expire_leases` (the chief calls it periodically).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import URL, Connection, Engine

from hpsearch.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
)
from hpsearch.records import (
    ENQUEUED_TAG,
    NOTE_TAG,
    USER_TAGS_TAG,
    Annotations,
    Attempt,
    AttemptState,
    MeasurementRecord,
    Study,
    StudySnapshot,
    StudyState,
    StudySummary,
    Trial,
    TrialState,
    Worker,
)
from hpsearch.space import Params, ParamValue, Space, StudyConfig
from hpsearch.space.lifecycle import StudyChange, refuse_unsafe, study_changes
from hpsearch.space.pareto import pareto_front
from hpsearch.store import fencing
from hpsearch.store.driver import Batch, BatchPart, DriverStatement
from hpsearch.store.engine import (
    db_now,
    make_engine,
    normalize_url,
    process_write_lock,
    safe_url,
)
from hpsearch.store.group_commit import GroupCommit
from hpsearch.store.migrate import ensure_schema
from hpsearch.store.sql import (
    MEASUREMENTS,
    TRIAL_COLUMNS,
    TRIALS,
    statements,
    study_id_by_name,
)
from hpsearch.store.transactions import Guard, run_transaction

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///hpsearch.db"
MAX_LEASE_SECONDS = 7 * 86400.0
#: The longest infeasible reason kept (characters).
MAX_REASON = 2000
#: Write transactions (groups of concurrent writes) in flight at once on PostgreSQL.  A
#: group's statements go in one round trip with its BEGIN (driver.Batch), so a group takes
#: two round trips whatever its size, and one leader makes the largest groups: each pays
#: its BEGIN, fence and COMMIT once for more writes.  Before batches two leaders beat
#: one, because a group then took a round trip per write and larger groups were slower;
#: with batches one leader serves more trials per second at less CPU per trial (measured:
#: benchmarks/results/design_figures.md, "One group-commit leader on PostgreSQL").
POSTGRES_WRITE_GROUPS = 1

R = TypeVar("R")


class Store:
    """One database.  Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        *,
        upgrade: bool = True,
        pool_size: int = 8,
        max_overflow: int = 40,
    ) -> None:
        """Connect; on a new empty database apply the migrations (``upgrade=True``).

        An existing database at an older revision raises StorageError telling the user to
        run ``hpsearch db upgrade --storage URL``.  ``pool_size + max_overflow`` bounds the
        connections this process opens.
        """
        self.url = normalize_url(url)
        self._engine = make_engine(self.url, pool_size=pool_size, max_overflow=max_overflow)
        try:
            ensure_schema(self._engine, upgrade=upgrade)
        except BaseException:
            self._engine.dispose()
            raise
        self._sql = statements(self._engine.dialect.name)
        self._write_lock = process_write_lock(self._engine)
        # One writer at a time on SQLite; on PostgreSQL a few groups commit side by side.
        leaders = 1 if self._engine.dialect.name == "sqlite" else POSTGRES_WRITE_GROUPS
        # The leaders keep their connections open (see WriteConnections) when the pool
        # leaves plenty for everything else; a pool of a few connections keeps none.
        capacity = pool_size + max_overflow if max_overflow >= 0 else None
        keep = leaders if capacity is None or capacity >= 4 * leaders else 0
        self._writes = GroupCommit(
            self._engine, write_lock=self._write_lock, max_leaders=leaders, keep_connections=keep
        )
        if self._engine.dialect.name == "postgresql":
            self._writes.batch = Batch  # a group's statements in one round trip
        # The statements of a trial's life, run on the driver's cursor (see driver.py).
        sql = self._sql
        self._hot: dict[int, DriverStatement] = {
            id(stmt): DriverStatement(stmt, self._engine.dialect)
            for stmt in (
                sql.next_number,
                sql.insert_running_trial,
                sql.insert_attempt,
                sql.renew,
                sql.add_measurement,
                sql.complete,
                sql.fail,
                sql.stop,
                sql.end_attempt,
                fencing.STILL_HELD,
                *([sql.create_running_one] if sql.create_running_one is not None else []),
                *sql.leave_running_one.values(),
            )
        }

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for read-only queries outside this interface (dashboard)."""
        return self._engine

    @property
    def write_stats(self) -> tuple[int, int]:
        """``(transactions, writes)`` committed by this process's group commit so far:
        how many writes shared a transaction (for diagnostics and benchmarks)."""
        return self._writes.groups, self._writes.writes

    @property
    def batched_writes(self) -> int:
        """Writes committed so far in batches: a group's statements sent in one round trip
        with its BEGIN (PostgreSQL; see :class:`hpsearch.store.driver.Batch`)."""
        return self._writes.batched

    def close(self) -> None:
        """Close every pooled connection.  The store must not be used afterwards."""
        self._writes.connections.close()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)!r})"

    def db_now(self) -> float:
        """The database clock, seconds since the epoch."""
        return self._read(lambda conn: float(conn.execute(_NOW).scalar_one()))

    # -- studies ------------------------------------------------------------------------
    def create_study(self, config: StudyConfig, *, exist_ok: bool = False) -> Study:
        """AlreadyExistsError if the name is taken (unless ``exist_ok`` and configs match)."""
        values = {
            "b_study": config.name,
            "b_config": config.to_dict(),
            "b_state": StudyState.ACTIVE.value,
            "b_goal": config.metric.goal.value,
            "b_lease_seconds": float(config.lease_seconds),
            "b_max_attempts": config.budget.max_attempts,
        }

        def body(conn: Connection) -> Study:
            if config.warm_start is not None:
                self._check_warm_start(conn, config)
            row = conn.execute(self._sql.create_study, values).first()
            if row is not None:
                return _study(row)
            existing = conn.execute(self._sql.study_by_name, values).one()
            study = _study(existing)
            if exist_ok and study.config == config:
                return study
            if exist_ok:
                raise AlreadyExistsError(
                    f"study {config.name!r} already exists with a different configuration; "
                    "choose another name, or delete the old study first"
                )
            raise AlreadyExistsError(
                f"study {config.name!r} already exists; choose another name, pass exist_ok "
                "(--exist-ok) to reuse an identical study, or delete the old one"
            )

        study = self._write(body, "create study")
        logger.info("study created study=%s id=%d", study.name, study.id)
        return study

    def get_study(self, name: str) -> Study:
        """NotFoundError if there is no such study."""

        def body(conn: Connection) -> Study:
            row = conn.execute(self._sql.study_by_name, {"b_study": name}).first()
            if row is None:
                raise _no_study(name)
            return _study(row)

        return self._read(body)

    def list_studies(self) -> list[StudySummary]:
        """Every study by name, with its trial counts, best value and last activity.

        Two queries whatever the number of studies.
        """

        def body(conn: Connection) -> list[StudySummary]:
            studies = conn.execute(self._sql.all_studies).all()
            by_study: dict[int, list[Any]] = {}
            for stat in conn.execute(self._sql.study_stats):
                by_study.setdefault(stat[0], []).append(stat)
            summaries = []
            for row in studies:
                study = _study(row)
                counts = {state: 0 for state in TrialState}
                best: float | None = None
                last = study.updated_at
                for _, state, count, low, high, updated in by_study.get(study.id, []):
                    counts[TrialState(state)] = int(count)
                    if updated is not None:
                        last = max(last, float(updated))
                    if state == TrialState.COMPLETED.value and low is not None:
                        best = study.config.metric.goal.best((low, high))
                summaries.append(
                    StudySummary(study=study, counts=counts, best_value=best, last_activity=last)
                )
            return summaries

        return self._read(body)

    def update_space(self, name: str, space: Space) -> Study:
        """Replace a study's declared space (Keras Tuner's UpdateSpace merges then calls this)."""

        def body(conn: Connection) -> Study:
            row = conn.execute(self._sql.study_config_for_update, {"b_study": name}).first()
            if row is None:
                raise _no_study(name)
            config = StudyConfig.from_dict(row.config).with_space(space)
            updated = conn.execute(
                self._sql.set_study_config, {"b_study": name, "b_config": config.to_dict()}
            ).one()
            return _study(updated)

        study = self._write(body, "update space")
        logger.info("study space updated study=%s parameters=%d", name, len(space))
        return study

    def set_study_state(self, name: str, state: StudyState) -> Study:
        """Mark a study ACTIVE, COMPLETED or STOPPED."""
        state = StudyState(state)

        def body(conn: Connection) -> Study:
            row = conn.execute(
                self._sql.set_study_state, {"b_study": name, "b_state": state.value}
            ).first()
            if row is None:
                raise _no_study(name)
            return _study(row)

        study = self._write(body, "set study state")
        logger.info("study state set study=%s state=%s", name, state.value)
        return study

    def delete_study(self, name: str, *, if_idle: bool = False) -> int:
        """Delete a study with all its trials, attempts and measurements; returns how many
        trials went.  ``if_idle``: FailedPreconditionError, deleting nothing, while any
        trial runs (its worker would report to a study that is gone)."""

        def body(conn: Connection) -> int:
            counts = {state: n for _, state, n in conn.execute(self._sql.count, {"b_study": name})}
            if not counts:
                raise _no_study(name)
            running = counts.get(TrialState.RUNNING.value, 0)
            if if_idle and running:
                raise FailedPreconditionError(
                    f"study {name!r} has {running} running trial(s); stop it first "
                    f"(`hpsearch study stop {name}`) and let them end, or delete it anyway "
                    "(--force: their workers then get 'no such study')"
                )
            conn.execute(self._sql.delete_study, {"b_study": name})
            return sum(n for state, n in counts.items() if state is not None)

        trials = self._write(body, "delete study")
        logger.info("study deleted study=%s trials=%d", name, trials)
        return trials

    # -- the study life cycle -------------------------------------------------------------
    def stop_study(self, name: str) -> Study:
        """Mark a study STOPPED: no new trial is handed out, running ones are told to stop
        at their next heartbeat or report (by the chief), workers are answered DONE."""
        return self._change_state(name, StudyState.STOPPED, "stop")

    def resume_study(self, name: str) -> Study:
        """A STOPPED study becomes ACTIVE again (an ACTIVE one stays so).  A COMPLETED study
        is resumed by raising its budget instead (:meth:`update_study`)."""
        return self._change_state(name, StudyState.ACTIVE, "resume")

    def finish_study(self, name: str, seen: StudyConfig) -> Study:
        """ACTIVE -> COMPLETED, when the study is still declared as ``seen``: a chief whose
        mirror is behind a change (a raised ``max_trials``, a stop) must not finish it.
        Returns the study as stored afterwards (still ACTIVE when the declaration moved)."""

        def body(conn: Connection) -> Study:
            row = self._study_for_update(conn, name)
            study = _study(row)
            if study.state is not StudyState.ACTIVE or study.config != seen:
                return study
            updated = conn.execute(
                self._sql.set_study_state,
                {"b_study": name, "b_state": StudyState.COMPLETED.value},
            ).one()
            return _study(updated)

        return self._write(body, "finish study")

    def update_study(self, name: str, config: StudyConfig) -> tuple[Study, list[StudyChange]]:
        """Apply the safe differences of ``config`` from study ``name``'s declaration
        (see :func:`hpsearch.space.lifecycle.study_changes`) and return the study and the
        changes.  InvalidArgumentError, changing nothing, when one is not safe, when
        ``max_trials`` falls below the trials created, or for another name.  A COMPLETED
        study whose raised budget has room again becomes ACTIVE."""
        if config.name != name:
            raise InvalidArgumentError(
                f"the new declaration is named {config.name!r}, not {name!r}; a study is "
                f"renamed by copying it: `hpsearch study copy {name} --name {config.name}`, "
                f"then `hpsearch study delete {name}`"
            )

        def body(conn: Connection) -> tuple[Study, list[StudyChange]]:
            row = self._study_for_update(conn, name)
            study = _study(row)
            changes = study_changes(study.config, config)
            refuse_unsafe(name, changes)
            if not changes:
                return study, []
            added = tuple(p for p in config.space if p.name not in study.config.space)
            merged = config.with_space(Space(study.config.space.parameters + added))
            if merged.budget.max_trials < row.trial_count:
                raise InvalidArgumentError(
                    f"study {name!r} has {row.trial_count} trials already; max_trials must "
                    f"be at least that, got {merged.budget.max_trials}"
                )
            state = study.state
            if state is StudyState.COMPLETED and self._has_room(conn, name, merged, row):
                state = StudyState.ACTIVE
            updated = conn.execute(
                self._sql.update_study,
                {
                    "b_study_id": row.id,
                    "b_config": merged.to_dict(),
                    "b_state": state.value,
                    "b_lease_seconds": float(merged.lease_seconds),
                    "b_max_attempts": merged.budget.max_attempts,
                },
            ).one()
            return _study(updated), changes

        study, changes = self._write(body, "update study")
        if changes:
            logger.info(
                "study updated study=%s state=%s changes=%r",
                name,
                study.state.value,
                [str(c) for c in changes],
            )
        return study, changes

    def annotate(
        self,
        study: str,
        number: int | None = None,
        *,
        note: str | None = None,
        tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
    ) -> Annotations:
        """Write on a study, or on its trial ``number``: ``note`` replaces the note (None
        keeps it, "" removes it), ``tags`` sets or replaces tags, ``remove_tags`` deletes
        keys; returns what it carries afterwards.  A trial's are kept in its ``tags`` under
        ``note`` and ``user_tags``, next to the tags hpsearch sets."""
        note, tags, remove = _check_annotations(note, tags, remove_tags)

        def on_study(conn: Connection) -> Annotations:
            row = self._study_for_update(conn, study)
            merged = _annotated(Annotations(row.note, dict(row.tags or {})), note, tags, remove)
            updated = conn.execute(
                self._sql.annotate_study,
                {"b_study_id": row.id, "b_note": merged.note, "b_tags": merged.tags},
            ).one()
            return Annotations(updated.note, dict(updated.tags or {}))

        def on_trial(conn: Connection) -> Annotations:
            assert number is not None
            row = self._trial_for_update(conn, study, _check_id(number, "trial number"))
            trial = _trial(row)
            merged = _annotated(Annotations(trial.note, trial.user_tags), note, tags, remove)
            stored = {k: v for k, v in trial.tags.items() if k not in (NOTE_TAG, USER_TAGS_TAG)}
            if merged.note is not None:
                stored[NOTE_TAG] = merged.note
            if merged.tags:
                stored[USER_TAGS_TAG] = merged.tags
            updated = _trial(
                conn.execute(
                    self._sql.set_trial_tags, {"b_trial_id": row.id, "b_tags": stored}
                ).one()
            )
            return Annotations(updated.note, updated.user_tags)

        if number is None:
            return self._write(on_study, "annotate study")
        return self._write(on_trial, "annotate trial")

    def record_artifacts(
        self, study: str, number: int, attempt: int, artifacts: Mapping[str, str]
    ) -> Trial:
        """Merge where a trial's files are into its tags (``model_dir``, ``checkpoint_dir``,
        ``log_dir``, ``output_log_path``...: every key ends in ``_dir``, ``_path`` or
        ``_uri``, the tags the dashboard lists as artifacts).  Refused with
        StaleAttemptError once another attempt than ``attempt`` holds the trial: its
        directories (possibly on another machine) are the ones that count."""
        artifacts = _check_artifacts(artifacts)
        number = _check_id(number, "trial number")

        def body(conn: Connection) -> Trial:
            row = self._trial_for_update(conn, study, number)
            trial = _trial(row)
            if trial.attempt != attempt:
                raise StaleAttemptError(
                    f"trial {number} of study {study!r} is at attempt {trial.attempt}; "
                    f"attempt {attempt} no longer records its artifacts"
                )
            return _trial(
                conn.execute(
                    self._sql.set_trial_tags,
                    {"b_trial_id": row.id, "b_tags": {**trial.tags, **artifacts}},
                ).one()
            )

        return self._write(body, "record artifacts")

    def enqueue_trials(self, study: str, params: Sequence[Mapping[str, Any]]) -> list[Trial]:
        """Queue known parameter sets as WAITING trials (tagged ``enqueued``): the chief
        hands WAITING trials out before any suggestion of the search, so they run first.

        Each set is validated against the study's space; they count against
        ``max_trials`` (InvalidArgumentError, nothing queued, when they do not fit: raise
        it first).  Not for a COMPLETED study (raise its budget first) nor a multi-fidelity
        one (its schedule gives every trial its budget)."""
        if not params:
            raise InvalidArgumentError("nothing to enqueue: give at least one parameter set")

        def body(conn: Connection) -> list[Trial]:
            row = self._study_for_update(conn, study)
            found = _study(row)
            config = found.config
            if config.fidelity is not None:
                raise InvalidArgumentError(
                    f"study {study!r} is multi-fidelity (algorithm {config.algorithm}): its "
                    "schedule gives every trial its budget, so parameter sets cannot be "
                    "queued; warm start a new study from it instead"
                )
            if found.state is StudyState.COMPLETED:
                raise FailedPreconditionError(
                    f"study {study!r} is completed; raise its budget first: `hpsearch study "
                    f"update {study} --max-trials {row.trial_count + len(params)}`"
                )
            room = config.budget.max_trials - row.trial_count
            if len(params) > room:
                raise InvalidArgumentError(
                    f"study {study!r} has room for {max(room, 0)} more trials "
                    f"(max_trials={config.budget.max_trials}, {row.trial_count} created) and "
                    f"{len(params)} were given; raise it first: `hpsearch study update "
                    f"{study} --max-trials {row.trial_count + len(params)}`"
                )
            checked = []
            for i, p in enumerate(params):
                try:
                    checked.append(config.space.validate(p))
                except InvalidArgumentError as error:
                    raise InvalidArgumentError(f"parameter set {i + 1}: {error}") from None
            return self._insert_waiting(
                conn,
                study,
                [
                    {"b_params": _check_params(p), "b_tags": {ENQUEUED_TAG: True}, "b_metrics": {}}
                    for p in checked
                ],
            )

        trials = self._write(body, "enqueue trials")
        logger.info(
            "trials enqueued study=%s numbers=%s", study, ",".join(str(t.number) for t in trials)
        )
        return trials

    def snapshot_study(self, name: str) -> StudySnapshot:
        """The whole study (trials, attempts, measurements, notes and tags) in one read
        transaction, for :meth:`restore_study` into another database."""

        def body(conn: Connection) -> StudySnapshot:
            row = conn.execute(self._sql.study_with_count, {"b_study": name}).first()
            if row is None:
                raise _no_study(name)
            args = {"b_study": name}
            trials = conn.execute(
                select(*TRIAL_COLUMNS).where(TRIALS.c.study_id == row.id).order_by(TRIALS.c.number)
            ).all()
            attempts = [
                _attempt(a, a.number) for a in conn.execute(self._sql.study_attempts, args)
            ]
            # Under PostgreSQL's READ COMMITTED each statement sees the latest commits: a
            # trial created after the first read is left out with its rows.
            numbers = {t.number for t in trials}
            return StudySnapshot(
                study=_study(row),
                trial_count=max(numbers, default=-1) + 1,
                trials=[_trial(t) for t in trials],
                attempts=[a for a in attempts if a.trial_number in numbers],
                measurements=[
                    m for m in self._measurements(conn, name, None) if m.trial_number in numbers
                ],
            )

        return self._read(body)

    def restore_study(self, snapshot: StudySnapshot, *, name: str | None = None) -> Study:
        """Insert a study read by :meth:`snapshot_study` (from any database), under ``name``
        (default: its own), with its trial numbers, attempts, measurements, timestamps,
        notes and tags, in one transaction.  Trials that were RUNNING come in WAITING,
        their attempt LOST ("copied while running"), so that they run again here.
        AlreadyExistsError when the name is taken."""
        source = snapshot.study
        config = source.config if name is None else replace_name(source.config, name)

        def body(conn: Connection) -> Study:
            row = conn.execute(
                self._sql.restore_study,
                {
                    "b_study": config.name,
                    "b_config": config.to_dict(),
                    "b_state": source.state.value,
                    "b_goal": config.metric.goal.value,
                    "b_lease_seconds": float(config.lease_seconds),
                    "b_max_attempts": config.budget.max_attempts,
                    "b_count": snapshot.trial_count,
                    "b_created_at": source.created_at,
                    "b_note": source.note,
                    "b_tags": dict(source.user_tags) or None,
                },
            ).first()
            if row is None:
                raise AlreadyExistsError(
                    f"study {config.name!r} already exists in the target database; copy "
                    "under another name (--name NEW) or delete that study first"
                )
            _restore_rows(conn, self._sql, row.id, snapshot)
            return _study(row)

        study = self._write(body, "restore study")
        logger.info(
            "study restored study=%s from=%s trials=%d attempts=%d measurements=%d",
            study.name,
            source.name,
            len(snapshot.trials),
            len(snapshot.attempts),
            len(snapshot.measurements),
        )
        return study

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
        values: dict[str, Any] = {
            "b_study": study,
            "b_params": _check_params(params),
            "b_tags": _check_json(dict(tags or {}), "tags"),
            "b_metrics": {},
            "b_worker": None if worker_id is None else _check_worker(worker_id),
            "b_count": 1,
        }
        lease = _check_lease(lease_seconds)

        one_statement = self._sql.create_running_one
        if values["b_worker"] is not None and one_statement is not None:
            # PostgreSQL: the counter, the trial and its attempt in one round trip.
            args = {**values, "b_lease": lease}

            def one_round_trip(conn: Connection) -> Trial:
                row = self._first(conn, one_statement, args)
                if row is None:
                    raise _no_study(study)
                return _trial(row)

            part = BatchPart(self._hot[id(one_statement)], args, _trial)
            trial = self._write(one_round_trip, "create trial", part)
            logger.debug("trial created study=%s number=%d state=RUNNING", study, trial.number)
            return trial

        def body(conn: Connection) -> Trial:
            counter = self._first(conn, self._sql.next_number, values)
            if counter is None:
                raise _no_study(study)
            args = {**values, "b_study_id": counter.id, "b_number": counter.trial_count - 1}
            if values["b_worker"] is None:
                return _trial(conn.execute(self._sql.insert_waiting_trial, args).one())
            args["b_lease"] = counter.lease_seconds if lease is None else lease
            row = self._first(conn, self._sql.insert_running_trial, args)
            self._first(
                conn,
                self._sql.insert_attempt,
                {
                    "b_trial_id": row.id,
                    "b_attempt": 1,
                    "b_worker": values["b_worker"],
                    "b_started_at": row.started_at,
                },
            )
            return _trial(row)

        trial = self._write(body, "create trial")
        logger.debug(
            "trial created study=%s number=%d state=%s", study, trial.number, trial.state.value
        )
        return trial

    def create_trials(
        self,
        study: str,
        params: Sequence[Mapping[str, ParamValue]],
        *,
        tags: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[Trial]:
        """Insert several WAITING trials with consecutive numbers in one transaction.

        One commit for the lot: where every commit waits for a disk flush (PostgreSQL),
        queueing a batch of suggestions this way is much faster than one by one.
        ``tags``, when given, has one mapping per trial.
        """
        if tags is not None and len(tags) != len(params):
            raise InvalidArgumentError(
                f"create_trials got {len(params)} parameter sets but {len(tags)} tag mappings"
            )
        rows = [
            {
                "b_params": _check_params(p),
                "b_tags": _check_json(dict(tags[i]) if tags else {}, "tags"),
                "b_metrics": {},
            }
            for i, p in enumerate(params)
        ]
        if not rows:
            self.get_study(study)  # NotFoundError for an unknown study, as below
            return []

        trials = self._write(lambda conn: self._insert_waiting(conn, study, rows), "create trials")
        logger.debug("trials created study=%s count=%d", study, len(trials))
        return trials

    def claim_trial(
        self, study: str, worker_id: str, *, lease_seconds: float | None = None
    ) -> Trial | None:
        """Claim the lowest-numbered WAITING trial: RUNNING, attempt+1, lease. None if none."""
        values = {
            "b_study": study,
            "b_worker": _check_worker(worker_id),
            "b_lease": _check_lease(lease_seconds),
        }

        def body(conn: Connection) -> Trial | None:
            row = conn.execute(self._sql.claim, values).first()
            if row is None:
                self._require_study(conn, study)
                return None
            conn.execute(
                self._sql.insert_attempt,
                {
                    "b_trial_id": row.id,
                    "b_attempt": row.attempt,
                    "b_worker": values["b_worker"],
                    "b_started_at": row.started_at,
                },
            )
            return _trial(row)

        trial = self._write(body, "claim trial")
        if trial is not None:
            logger.debug(
                "trial claimed study=%s number=%d attempt=%d worker=%s",
                study,
                trial.number,
                trial.attempt,
                trial.worker_id,
            )
        return trial

    def renew_lease(
        self, study: str, number: int, attempt: int, *, lease_seconds: float | None = None
    ) -> Trial:
        """Extend a running attempt's lease (a heartbeat).

        StaleAttemptError if the trial is not RUNNING at this attempt or its lease expired.
        """
        values = {
            "b_study": study,
            "b_number": _check_id(number, "trial number"),
            "b_attempt": attempt,
            "b_lease": _check_lease(lease_seconds),
        }

        def body(conn: Connection) -> Trial | BaseException:
            row = self._first(conn, self._sql.renew, values)
            if row is not None:
                return _trial(row)
            return self._refuse(conn, values, "renew its lease", revive=True)

        return self._write(body, "renew lease")

    def complete_trial(
        self,
        study: str,
        number: int,
        attempt: int,
        value: float | None,
        metrics: Mapping[str, float] | None = None,
        *,
        infeasible_reason: str | None = None,
    ) -> Trial:
        """RUNNING -> COMPLETED.  Idempotent for the same attempt; StaleAttemptError otherwise.

        A repeated report is the same when its value (and its metrics, if given) equal the
        stored ones.  InvalidArgumentError for a NaN/inf value or metric; nothing is stored.
        ``infeasible_reason`` marks the trial infeasible (it broke a constraint); only an
        infeasible trial may come without a value.
        """
        if value is None and infeasible_reason is None:
            raise InvalidArgumentError("a feasible trial is completed with a value")
        checked = None if value is None else _check_number(value, "the objective value")
        metric_data = _check_metrics(metrics)
        if infeasible_reason is not None:
            infeasible_reason = str(infeasible_reason)[:MAX_REASON] or "infeasible"

        def same(trial: Trial) -> bool:
            return (
                trial.value == checked
                and (metrics is None or trial.metrics == metric_data)
                and trial.infeasible_reason == infeasible_reason
            )

        trial = self._leave_running(
            self._sql.complete,
            {
                "b_study": study,
                "b_number": _check_id(number, "trial number"),
                "b_attempt": attempt,
                "b_value": checked,
                "b_metrics": metric_data,
                "b_infeasible": infeasible_reason,
            },
            AttemptState.COMPLETED,
            same,
            f"complete it with value {checked!r}",
        )
        logger.debug("trial completed study=%s number=%d value=%r", study, number, checked)
        return trial

    def fail_trial(
        self,
        study: str,
        number: int,
        attempt: int,
        message: str,
        *,
        retry: bool = False,
        lost: bool = False,
    ) -> Trial:
        """End an attempt as FAILED.  With ``retry`` and attempts left, the trial goes back
        to WAITING for another attempt; otherwise the trial is FAILED.  Idempotent.

        ``lost``: the attempt is ended as LOST, not FAILED: its worker is gone (it
        restarted), so, as after a lease expiry, a result it still sends may count."""
        message = str(message)
        trial = self._leave_running(
            self._sql.fail,
            {
                "b_study": study,
                "b_number": _check_id(number, "trial number"),
                "b_attempt": attempt,
                "b_retry": bool(retry),
                "b_message": message,
            },
            AttemptState.LOST if lost else AttemptState.FAILED,
            lambda _trial: True,
            "fail it",
        )
        logger.info(
            "trial attempt failed study=%s number=%d attempt=%d state=%s message=%r",
            study,
            number,
            attempt,
            trial.state.value,
            message[:200],
        )
        return trial

    def stop_trial(
        self, study: str, number: int, attempt: int, *, value: float | None = None
    ) -> Trial:
        """RUNNING -> STOPPED (early stopping, study finished).  Idempotent."""
        checked = None if value is None else _check_number(value, "the objective value")
        trial = self._leave_running(
            self._sql.stop,
            {
                "b_study": study,
                "b_number": _check_id(number, "trial number"),
                "b_attempt": attempt,
                "b_value": checked,
            },
            AttemptState.STOPPED,
            lambda _trial: True,
            "stop it",
        )
        logger.debug("trial stopped study=%s number=%d", study, number)
        return trial

    def expire_leases(self, study: str | None = None) -> list[Trial]:
        """Mark every RUNNING attempt whose lease has passed as LOST; each trial goes back to
        WAITING when it has attempts left (budget.max_attempts), else FAILED.  Returns the
        trials changed.  One indexed query when nothing expired."""
        if study is None:
            stmt, args = self._sql.lapsed_all, {}
        else:
            stmt, args = self._sql.lapsed_in_study, {"b_study": study}
        trials = self._write(lambda conn: self._expire(conn, stmt, args), "expire leases")
        for trial in trials:
            logger.info(
                "lease expired study_id=%d number=%d attempt=%d worker=%s state=%s",
                trial.study_id,
                trial.number,
                trial.attempt,
                trial.worker_id,
                trial.state.value,
            )
        return trials

    def get_trial(self, study: str, number: int) -> Trial:
        """NotFoundError if the study or the trial does not exist."""
        args = {"b_study": study, "b_number": _check_id(number, "trial number")}

        def body(conn: Connection) -> Trial:
            row = conn.execute(self._sql.trial, args).first()
            if row is None:
                self._require_trial(conn, study, number)
            return _trial(row)

        return self._read(body)

    def list_trials(
        self,
        study: str,
        *,
        states: Sequence[TrialState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Trial]:
        """Trials by number."""
        stmt = select(*TRIAL_COLUMNS).where(TRIALS.c.study_id == study_id_by_name())
        if states is not None:
            stmt = stmt.where(TRIALS.c.state.in_([TrialState(s).value for s in states]))
        stmt = stmt.order_by(TRIALS.c.number).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)

        def body(conn: Connection) -> list[Trial]:
            rows = conn.execute(stmt, {"b_study": study}).all()
            if not rows:
                self._require_study(conn, study)
            return [_trial(row) for row in rows]

        return self._read(body)

    def count_trials(self, study: str) -> dict[TrialState, int]:
        """Trials by state; every state is a key (0 when none)."""

        def body(conn: Connection) -> dict[TrialState, int]:
            rows = conn.execute(self._sql.count, {"b_study": study}).all()
            if not rows:
                raise _no_study(study)
            counts = {state: 0 for state in TrialState}
            for _, state, count in rows:
                if state is not None:
                    counts[TrialState(state)] = int(count)
            return counts

        return self._read(body)

    def best_trials(self, study: str, n: int = 1) -> list[Trial]:
        """Feasible COMPLETED trials ordered best first under the study's goal (ties: lower
        number), at most ``n``; in a study with several metrics, its Pareto front
        (:func:`hpsearch.space.pareto.pareto_front`), best first by the first metric."""

        def body(conn: Connection) -> tuple[list[Trial], Any]:
            rows = conn.execute(self._sql.best, {"b_study": study, "b_n": max(0, int(n))}).all()
            if not rows:
                self._require_study(conn, study)
                return [], None
            return [_trial(row) for row in rows], rows[0].study_config

        best, declared = self._read(body)
        if not isinstance(declared, Mapping) or len(declared.get("metrics") or ()) < 2:
            return best
        config = StudyConfig.from_dict(declared)
        completed = self.list_trials(study, states=[TrialState.COMPLETED])
        front = pareto_front(config, completed, lambda t: t.metrics, lambda t: t.feasible)
        return front[: max(0, int(n))]

    def running_trial_of(self, study: str, worker_id: str) -> Trial | None:
        """The RUNNING trial whose (unexpired) lease this worker holds, if any."""

        def body(conn: Connection) -> Trial | None:
            row = conn.execute(
                self._sql.running_of, {"b_study": study, "b_worker": worker_id}
            ).first()
            if row is None:
                self._require_study(conn, study)
                return None
            return _trial(row)

        return self._read(body)

    def list_attempts(self, study: str, number: int) -> list[Attempt]:
        """Every attempt of a trial, first to last."""
        args = {"b_study": study, "b_number": _check_id(number, "trial number")}

        def body(conn: Connection) -> list[Attempt]:
            rows = conn.execute(self._sql.attempts, args).all()
            if not rows:
                self._require_trial(conn, study, number)
            return [_attempt(row, number) for row in rows]

        return self._read(body)

    # -- measurements -------------------------------------------------------------------
    def add_measurement(
        self,
        study: str,
        number: int,
        attempt: int,
        step: int,
        metrics: Mapping[str, float],
        *,
        late: bool = False,
    ) -> MeasurementRecord:
        """Record an intermediate measurement of a running attempt (idempotent per step).

        The first report of a step wins: reporting the step again returns the stored
        record.  StaleAttemptError when the attempt is not the running one, unless
        ``late``: then the measurement of an attempt that was given up on (LOST) is kept
        while its trial is not COMPLETED, since its result may still count (a stock Keras
        Tuner worker reports its measurements, then ends the trial).
        """
        _check_id(step, "step")
        metric_data = _check_metrics(metrics)
        if not metric_data:
            raise InvalidArgumentError("a measurement needs at least one metric")
        values = {
            "b_study": study,
            "b_number": _check_id(number, "trial number"),
            "b_attempt": attempt,
            "b_step": step,
            "b_metrics": metric_data,
        }

        def record(row: Any) -> MeasurementRecord:
            return MeasurementRecord(
                trial_number=number,
                attempt=attempt,
                step=step,
                metrics=dict(row.metrics),
                created_at=row.created_at,
            )

        def body(conn: Connection) -> MeasurementRecord | BaseException:
            row = self._first(conn, self._sql.add_measurement, values)
            if row is None:
                row = conn.execute(self._sql.measurement, values).first()
            if row is None and late:
                facts = conn.execute(self._sql.refusal_facts, values).first()
                if (
                    facts is not None
                    and facts.attempt_state == AttemptState.LOST.value
                    and facts.state != TrialState.COMPLETED.value
                ):
                    row = conn.execute(
                        self._sql.late_measurement, {**values, "b_trial_id": facts.id}
                    ).first()
                    if row is None:  # a concurrent report of the same step won
                        row = conn.execute(self._sql.measurement, values).first()
            if row is None:
                refusal = self._refuse(conn, values, "add a measurement to it")
                assert isinstance(refusal, BaseException)  # no outcome: never a replay
                return refusal
            return record(row)

        part = BatchPart(self._hot[id(self._sql.add_measurement)], values, record)
        return self._write(body, "add measurement", part)

    def list_measurements(self, study: str, number: int | None = None) -> list[MeasurementRecord]:
        """Measurements of a study (or of one trial) by trial number, attempt and step."""
        if number is not None:
            _check_id(number, "trial number")
        return self._read(lambda conn: self._measurements(conn, study, number))

    # -- workers ------------------------------------------------------------------------
    def touch_worker(
        self, worker_id: str, *, host: str | None = None, info: Mapping[str, Any] | None = None
    ) -> Worker:
        """Record that a worker was heard from now (host and info kept unless given)."""
        values = {
            "b_worker": _check_worker(worker_id),
            "b_host": host,
            "b_info": {} if info is None else _check_json(dict(info), "worker info"),
            "b_has_info": info is not None,
        }

        def body(conn: Connection) -> Worker:
            return _worker(conn.execute(self._sql.touch_worker, values).one())

        return self._write(body, "touch worker")

    def list_workers(self) -> list[Worker]:
        """Every worker ever seen, by id."""
        return self._read(
            lambda conn: [_worker(row) for row in conn.execute(self._sql.workers).all()]
        )

    # -- the chief's fencing lease (see hpsearch.store.fencing) --------------------------
    def acquire_chief_lease(
        self, holder: str, lease_seconds: float, *, takeover: bool = False
    ) -> fencing.ChiefLease:
        """Take the chief lease of this database (epoch + 1).  ChiefLeaseHeldError when
        another chief holds an unexpired lease, unless ``takeover`` fences it."""
        return self._write(
            lambda conn: fencing.acquire(conn, holder, lease_seconds, takeover=takeover),
            "acquire chief lease",
        )

    def renew_chief_lease(
        self, lease: fencing.ChiefLease, lease_seconds: float
    ) -> fencing.ChiefLease:
        """Extend the chief lease; ChiefLeaseLostError when another chief took it over."""
        return self._write(
            lambda conn: fencing.renew(conn, lease, lease_seconds), "renew chief lease"
        )

    def release_chief_lease(self, lease: fencing.ChiefLease) -> bool:
        """Give the chief lease back (it expires now); False when it was already lost."""
        try:
            return self._write(lambda conn: fencing.release(conn, lease), "release chief lease")
        except fencing.ChiefLeaseLostError:  # this store's fence found it lost
            return False

    def fence_writes(
        self, lease: fencing.ChiefLease | None, *, on_lost: Callable[[], None] | None = None
    ) -> None:
        """Make every later write of this store check first, in its own transaction, that
        ``lease`` is still held (None: stop checking).  A chief fenced by another one's
        ``--takeover`` then writes nothing more, from the moment the takeover commits:
        its writes raise ChiefLeaseLostError (gRPC FAILED_PRECONDITION), before its next
        renewal would tell it; ``on_lost`` is called (on the writing thread: keep it
        short) each time.  Costs one indexed read per transaction, which goes with the
        transaction's BEGIN on PostgreSQL (see :mod:`hpsearch.store.fencing`)."""
        if lease is None:
            self._writes.guard = None
            return
        args = {"b_holder": lease.holder, "b_epoch": lease.epoch}
        postgres = self._engine.dialect.name == "postgresql"

        def held(conn: Connection, found: bool) -> None:
            if not found:
                if on_lost is not None:
                    on_lost()
                raise fencing.lost_error(conn, lease)

        def check(conn: Connection) -> None:
            if postgres:
                conn.execute(fencing.SHARE_FENCE)
            held(conn, self._first(conn, fencing.STILL_HELD, args) is not None)

        self._writes.guard = Guard(
            check,
            postgres_sql=(
                fencing.still_held_postgres_sql(lease, self._engine.dialect) if postgres else None
            ),
            postgres_check=lambda conn, rows: held(conn, bool(rows)),
        )

    def chief_lease(self) -> fencing.ChiefLease | None:
        """The chief lease as stored (possibly expired), None if no chief ever took it."""
        return self._read(fencing.current_lease)

    # -- internals ------------------------------------------------------------------------
    def _insert_waiting(
        self, conn: Connection, study: str, rows: Sequence[Mapping[str, Any]]
    ) -> list[Trial]:
        """WAITING trials with the next numbers (``rows``: their b_params/b_tags/b_metrics)."""
        counter = conn.execute(
            self._sql.next_number, {"b_study": study, "b_count": len(rows)}
        ).first()
        if counter is None:
            raise _no_study(study)
        first = counter.trial_count - len(rows)
        args = [
            {**row, "b_study_id": counter.id, "b_number": first + i} for i, row in enumerate(rows)
        ]
        created = conn.execute(self._sql.insert_waiting_trial, args).all()
        return sorted((_trial(row) for row in created), key=lambda t: t.number)

    def _measurements(
        self, conn: Connection, study: str, number: int | None
    ) -> list[MeasurementRecord]:
        m, t = MEASUREMENTS.c, TRIALS.c
        stmt = (
            select(t.number, m.attempt, m.step, m.metrics, m.created_at)
            .join(TRIALS, t.id == m.trial_id)
            .where(t.study_id == study_id_by_name())
        )
        if number is not None:
            stmt = stmt.where(t.number == number)
        rows = conn.execute(stmt.order_by(t.number, m.attempt, m.step), {"b_study": study}).all()
        if not rows:
            if number is None:
                self._require_study(conn, study)
            else:
                self._require_trial(conn, study, number)
        return [
            MeasurementRecord(
                trial_number=row.number,
                attempt=row.attempt,
                step=row.step,
                metrics=dict(row.metrics),
                created_at=row.created_at,
            )
            for row in rows
        ]

    def _study_for_update(self, conn: Connection, name: str) -> Any:
        """The study's row (with ``trial_count``), locked until the transaction ends."""
        row = conn.execute(self._sql.study_for_update, {"b_study": name}).first()
        if row is None:
            raise _no_study(name)
        return row

    def _trial_for_update(self, conn: Connection, study: str, number: int) -> Any:
        """The trial's row, locked until the transaction ends (NotFoundError naming the
        study or the trial that is missing)."""
        row = conn.execute(
            self._sql.trial_for_update, {"b_study": study, "b_number": number}
        ).first()
        if row is None:
            self._require_study(conn, study)
            raise _no_trial(study, number)
        return row

    def _change_state(self, name: str, state: StudyState, verb: str) -> Study:
        def body(conn: Connection) -> Study:
            study = _study(self._study_for_update(conn, name))
            if study.state is state:
                return study
            if state is StudyState.ACTIVE and study.state is StudyState.COMPLETED:
                raise FailedPreconditionError(
                    f"study {name!r} is completed (its budget is spent); raise its budget "
                    f"to go on: `hpsearch study update {name} --max-trials N`"
                )
            row = conn.execute(
                self._sql.set_study_state, {"b_study": name, "b_state": state.value}
            ).one()
            return _study(row)

        study = self._write(body, f"{verb} study")
        logger.info("study %s study=%s state=%s", verb, name, study.state.value)
        return study

    def _has_room(self, conn: Connection, name: str, config: StudyConfig, row: Any) -> bool:
        """Whether a study with ``config``'s budget has trials left to run."""
        if row.trial_count >= config.budget.max_trials:
            waiting = running = 0
            for _, state, n in conn.execute(self._sql.count, {"b_study": name}):
                if state == TrialState.WAITING.value:
                    waiting = n
                elif state == TrialState.RUNNING.value:
                    running = n
            if not waiting and not running:
                return False
        failed_limit = config.budget.max_failed_trials
        if failed_limit is None:
            return True
        failed = sum(
            n
            for _, state, n in conn.execute(self._sql.count, {"b_study": name})
            if state == TrialState.FAILED.value
        )
        return failed < failed_limit

    def _check_warm_start(self, conn: Connection, config: StudyConfig) -> None:
        """A warm start names an existing study of this database with the same metric."""
        assert config.warm_start is not None
        source = config.warm_start.study
        row = conn.execute(self._sql.study_by_name, {"b_study": source}).first()
        if row is None:
            raise InvalidArgumentError(
                f"warm_start.study {source!r} is not a study of this database; create it "
                f"here, or copy it here first (`hpsearch study copy {source} --storage "
                "SOURCE_URL --to THIS_URL`)"
            )
        metric = _study(row).config.metric
        if metric != config.metric:
            raise InvalidArgumentError(
                f"warm_start.study {source!r} optimizes {metric.name} ({metric.goal.value}) "
                f"and this study {config.metric.name} ({config.metric.goal.value}); a warm "
                "start needs the same metric and goal"
            )

    def _first(self, conn: Connection, stmt: Any, args: Mapping[str, Any]) -> Any:
        """The first row ``stmt`` returns (None if none), run in ``conn``'s transaction;
        a hot-path statement runs on the driver's cursor."""
        hot = self._hot.get(id(stmt))
        if hot is not None:
            return hot.first(conn, args)
        return conn.execute(stmt, args).first()

    def _read(self, fn: Callable[[Connection], R]) -> R:
        return run_transaction(
            self._engine, fn, write=False, what="read", write_lock=self._write_lock
        )

    def _write(
        self,
        fn: Callable[[Connection], R | BaseException],
        what: str,
        part: BatchPart | None = None,
    ) -> R:
        # ``fn`` may return an exception: it is raised after the transaction commits (a
        # refused report still commits the expiry of the lapsed lease it found).
        # Concurrent writers share transactions (group commit); each still returns only
        # after its own write is committed.  ``part``: the same write as one statement
        # whose first row gives its result, so that a group of them goes in one round trip
        # (PostgreSQL; see driver.Batch).
        result = self._writes.run(fn, what, part)
        if isinstance(result, BaseException):
            raise result
        return result

    def _leave_running(
        self,
        stmt: Any,
        values: dict[str, Any],
        outcome: AttemptState,
        same: Callable[[Trial], bool],
        action: str,
    ) -> Trial:
        """The one guarded transition out of RUNNING, with its idempotent replay."""
        attempt_values = {
            "b_attempt": values["b_attempt"],
            "b_state": outcome.value,
            "b_message": values.get("b_message"),
        }

        one_statement = self._sql.leave_running_one.get(id(stmt))
        if one_statement is not None:  # PostgreSQL: trial and attempt in one round trip
            args = {**values, **attempt_values}

            def one_round_trip(conn: Connection) -> Trial | BaseException:
                row = self._first(conn, one_statement, args)
                if row is None:
                    return self._refuse(conn, values, action, outcome, same)
                return _trial(row)

            part = BatchPart(self._hot[id(one_statement)], args, _trial)
            return self._write(one_round_trip, f"{outcome.value.lower()} trial", part)

        def body(conn: Connection) -> Trial | BaseException:
            row = self._first(conn, stmt, values)
            if row is None:
                return self._refuse(conn, values, action, outcome, same)
            self._first(conn, self._sql.end_attempt, {**attempt_values, "b_trial_id": row.id})
            return _trial(row)

        return self._write(body, f"{outcome.value.lower()} trial")

    def _refuse(
        self,
        conn: Connection,
        values: Mapping[str, Any],
        action: str,
        outcome: AttemptState | None = None,
        same: Callable[[Trial], bool] | None = None,
        *,
        revive: bool = False,
    ) -> Trial | BaseException:
        """After a guarded UPDATE matched nothing (the trial is not RUNNING at this attempt):
        the late-report rules.  Returns the trial to answer with, or the error to raise.

        - A repeated report (this attempt already ended this way) returns the stored trial.
        - A result (``outcome`` COMPLETED) of an attempt that was given up on (LOST: its
          lease expired, or its worker restarted) counts unless the trial is already
          COMPLETED: the trial takes this attempt's result, and an attempt started in its
          place is ended as STOPPED.  Training time is the expensive part.
        - A result for a trial another attempt completed, and a failure or a stop of an
          attempt that no longer decides its trial, are acknowledged: the stored trial is
          returned and nothing changes.
        - A heartbeat (``revive``) of an attempt given up on revives it when the trial
          still waits for its retry (a worker cut off for longer than its lease keeps its
          trial); once another attempt started, or the trial finished, it is refused.
        - Anything else contradicts what this attempt reported before: StaleAttemptError.
        """
        study, number, attempt = values["b_study"], values["b_number"], values["b_attempt"]
        for _ in range(_SETTLE_TRIES):
            row = conn.execute(self._sql.refusal_facts, values).first()
            if row is None:
                return _no_study(study)
            if row.id is None:
                return _no_trial(study, number)
            trial = _trial(row)
            head = f"trial {number} attempt {attempt} of study {study!r}"
            if row.attempt_state is None:
                return StaleAttemptError(
                    f"{head} does not exist (the trial's current attempt is {trial.attempt}, "
                    f"state {trial.state.value}); cannot {action}: report with the attempt "
                    "number you were given"
                )
            state = AttemptState(row.attempt_state)
            if state is outcome and same is not None and same(trial):
                logger.debug(
                    "repeated report study=%s number=%d attempt=%d outcome=%s",
                    study,
                    number,
                    attempt,
                    state.value,
                )
                return trial
            seen = {"b_trial_id": row.id, "b_seen_state": row.state, "b_seen_attempt": row.attempt}
            lost = state is AttemptState.LOST
            if outcome is None:  # a heartbeat or a measurement
                if (
                    revive
                    and lost
                    and trial.state is TrialState.WAITING
                    and trial.attempt == attempt
                ):
                    revived = conn.execute(
                        self._sql.revive,
                        {**seen, "b_worker": row.attempt_worker, "b_lease": values["b_lease"]},
                    ).first()
                    if revived is None:
                        continue  # changed under us: read again
                    conn.execute(
                        self._sql.reopen_attempt, {"b_trial_id": row.id, "b_attempt": attempt}
                    )
                    logger.info(
                        "lost attempt revived by its heartbeat study=%s number=%d attempt=%d "
                        "worker=%s",
                        study,
                        number,
                        attempt,
                        row.attempt_worker,
                    )
                    return _trial(revived)
                return StaleAttemptError(_stale_message(head, state, trial, row, action))
            if outcome is AttemptState.COMPLETED:
                if trial.state is TrialState.COMPLETED:
                    if trial.attempt == attempt:
                        return StaleAttemptError(
                            f"{head} already ended as COMPLETED with value {trial.value!r}; "
                            f"cannot {action}: a second, different report is refused"
                        )
                    return _acknowledged(trial, study, attempt, "completed by another attempt")
                if lost:
                    done = self._complete_late(conn, values, seen, row, trial)
                    if done is None:
                        continue  # changed under us (a retry was claimed): read again
                    return done
            elif lost or trial.attempt != attempt:
                return _acknowledged(trial, study, attempt, "the attempt no longer runs it")
            if trial.attempt != attempt:
                return _acknowledged(trial, study, attempt, "the attempt no longer runs it")
            return StaleAttemptError(
                f"{head} already ended as {state.value}; cannot {action}: drop this result"
            )
        return StaleAttemptError(
            f"trial {number} of study {study!r} kept changing while attempt {attempt}'s "
            "report was applied; report again"
        )

    def _complete_late(
        self,
        conn: Connection,
        values: Mapping[str, Any],
        seen: Mapping[str, Any],
        row: Any,
        trial: Trial,
    ) -> Trial | None:
        """A given-up attempt's result completes its trial (see :meth:`_refuse`); None
        when the trial changed since ``row`` was read."""
        attempt = values["b_attempt"]
        done = conn.execute(
            self._sql.late_complete,
            {
                **seen,
                "b_value": values["b_value"],
                "b_metrics": values["b_metrics"],
                "b_infeasible": values["b_infeasible"],
                "b_attempt": attempt,
                "b_worker": row.attempt_worker,
            },
        ).first()
        if done is None:
            return None
        self._first(
            conn,
            self._sql.end_attempt,
            {
                "b_trial_id": row.id,
                "b_attempt": attempt,
                "b_state": AttemptState.COMPLETED.value,
                "b_message": None,
            },
        )
        if trial.state is TrialState.RUNNING and trial.attempt != attempt:
            self._first(
                conn,
                self._sql.end_attempt,
                {
                    "b_trial_id": row.id,
                    "b_attempt": trial.attempt,
                    "b_state": AttemptState.STOPPED.value,
                    "b_message": f"superseded: attempt {attempt}, given up on earlier, "
                    "reported its result first",
                },
            )
        logger.info(
            "late result counted study=%s number=%d attempt=%d was=%s/%d worker=%s",
            values["b_study"],
            values["b_number"],
            attempt,
            trial.state.value,
            trial.attempt,
            row.attempt_worker,
        )
        return _trial(done)

    def _expire(self, conn: Connection, stmt: Any, args: Mapping[str, Any]) -> list[Trial]:
        """LOST for every lapsed RUNNING attempt ``stmt`` selects; WAITING or FAILED after."""
        changed: list[Trial] = []
        for trial_id, attempt, worker, expired_at, max_attempts in conn.execute(stmt, args).all():
            reason = (
                f"lease expired at {_when(expired_at)} without a heartbeat from worker {worker}"
            )
            retry = attempt < max_attempts
            row = conn.execute(
                self._sql.expire,
                {
                    "b_trial_id": trial_id,
                    "b_attempt": attempt,
                    "b_state": TrialState.WAITING.value if retry else TrialState.FAILED.value,
                    "b_message": f"attempt {attempt} lost: {reason}"
                    + ("" if retry else f"; gave up after {attempt} attempts"),
                },
            ).first()
            if row is None:
                continue
            conn.execute(
                self._sql.end_attempt,
                {
                    "b_trial_id": trial_id,
                    "b_attempt": attempt,
                    "b_state": AttemptState.LOST.value,
                    "b_message": reason,
                },
            )
            changed.append(_trial(row))
        return changed

    def _require_study(self, conn: Connection, study: str) -> None:
        if conn.execute(self._sql.study_exists, {"b_study": study}).first() is None:
            raise _no_study(study)

    def _require_trial(self, conn: Connection, study: str, number: int) -> None:
        if conn.execute(self._sql.trial_exists, {"b_study": study, "b_number": number}).first():
            return
        self._require_study(conn, study)
        raise _no_trial(study, number)


_NOW = select(db_now())


def _no_study(name: str) -> NotFoundError:
    return NotFoundError(
        f"there is no study {name!r}; create it with `hpsearch study create FILE`, or list "
        "studies with `hpsearch study list`"
    )


def _no_trial(study: str, number: int) -> NotFoundError:
    return NotFoundError(
        f"study {study!r} has no trial {number}; list its trials with `hpsearch trials {study}`"
    )


_SETTLE_TRIES = 3


def _stale_message(head: str, state: AttemptState, trial: Trial, row: Any, action: str) -> str:
    if state is AttemptState.LOST:
        return (
            f"{head} is no longer running: {row.attempt_failure or 'its lease expired'}, "
            f"and {_fate(trial)}; cannot {action}: drop this result"
        )
    return f"{head} already ended as {state.value}; cannot {action}: drop this result"


def _acknowledged(trial: Trial, study: str, attempt: int, why: str) -> Trial:
    logger.info(
        "late report acknowledged, nothing stored study=%s number=%d attempt=%d reason=%r "
        "trial_state=%s trial_attempt=%d",
        study,
        trial.number,
        attempt,
        why,
        trial.state.value,
        trial.attempt,
    )
    return trial


def _fate(trial: Trial) -> str:
    if trial.state is TrialState.WAITING:
        return f"the trial waits to be retried as attempt {trial.attempt + 1}"
    if trial.state is TrialState.RUNNING:
        return f"the trial was retried as attempt {trial.attempt}"
    if trial.state is TrialState.FAILED:
        return f"the trial FAILED after {trial.attempt} attempts"
    return f"the trial is {trial.state.value} (attempt {trial.attempt})"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "an unknown time"
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


# -- rows to records -----------------------------------------------------------------------------
def _study(row: Any) -> Study:
    return Study(
        id=row.id,
        name=row.name,
        config=StudyConfig.from_dict(row.config),
        state=StudyState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        note=row.note,
        user_tags=dict(row.tags or {}),
    )


def _trial(row: Any) -> Trial:
    return Trial(
        study_id=row.study_id,
        number=row.number,
        state=TrialState(row.state),
        params=dict(row.params),
        attempt=row.attempt,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        value=row.value,
        metrics=dict(row.metrics or {}),
        failure_message=row.failure_message,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        tags=dict(row.tags or {}),
        infeasible_reason=row.infeasible_reason,
    )


def _attempt(row: Any, number: int) -> Attempt:
    return Attempt(
        trial_number=number,
        attempt=row.attempt,
        worker_id=row.worker_id,
        state=AttemptState(row.state),
        started_at=row.started_at,
        ended_at=row.ended_at,
        failure_message=row.failure_message,
    )


def _worker(row: Any) -> Worker:
    return Worker(id=row.id, host=row.host, last_seen=row.last_seen, info=dict(row.info or {}))


def replace_name(config: StudyConfig, name: str) -> StudyConfig:
    """``config`` under another study name (checked like any study name)."""
    return StudyConfig.from_dict({**config.to_dict(), "name": name})


def _restore_rows(conn: Connection, sql: Any, study_id: int, snapshot: StudySnapshot) -> None:
    """The trials, attempts and measurements of ``snapshot`` under study ``study_id``."""
    copied = "copied to another database while running; run again here"
    trials = [
        {
            "study_id": study_id,
            "number": t.number,
            "state": TrialState.WAITING.value if t.state is TrialState.RUNNING else t.state.value,
            "params": dict(t.params),
            "attempt": t.attempt,
            "worker_id": t.worker_id,
            "lease_expires_at": None,
            "value": t.value,
            "metrics": dict(t.metrics),
            "failure_message": copied if t.state is TrialState.RUNNING else t.failure_message,
            "tags": dict(t.tags),
            "created_at": t.created_at,
            "started_at": t.started_at,
            "updated_at": t.completed_at or t.started_at or t.created_at,
            "completed_at": t.completed_at,
            "infeasible_reason": t.infeasible_reason,
        }
        for t in snapshot.trials
    ]
    if not trials:
        return
    conn.execute(sql.restore_trials, trials)
    ids = dict(conn.execute(sql.trial_ids, {"b_study_id": study_id}).all())
    attempts = [
        {
            "trial_id": ids[a.trial_number],
            "attempt": a.attempt,
            "worker_id": a.worker_id,
            "state": AttemptState.LOST.value if a.state is AttemptState.RUNNING else a.state.value,
            "started_at": a.started_at,
            "ended_at": a.ended_at
            if a.ended_at is not None or a.state is not AttemptState.RUNNING
            else a.started_at,
            "failure_message": copied if a.state is AttemptState.RUNNING else a.failure_message,
        }
        for a in snapshot.attempts
    ]
    if attempts:
        conn.execute(sql.restore_attempts, attempts)
    measurements = [
        {
            "trial_id": ids[m.trial_number],
            "attempt": m.attempt,
            "step": m.step,
            "metrics": dict(m.metrics),
            "created_at": m.created_at,
        }
        for m in snapshot.measurements
    ]
    if measurements:
        conn.execute(sql.restore_measurements, measurements)


#: Longest note, tag key and tag value, and most tags on one study or trial.
MAX_NOTE = 10_000
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256
MAX_TAGS = 64


def _check_annotations(
    note: str | None, tags: Mapping[str, str] | None, remove: Sequence[str]
) -> tuple[str | None, dict[str, str], list[str]]:
    if note is not None:
        if not isinstance(note, str):
            raise InvalidArgumentError(f"a note is text, got {note!r}")
        if len(note) > MAX_NOTE:
            raise InvalidArgumentError(
                f"a note holds at most {MAX_NOTE} characters, got {len(note)}; shorten it or "
                "link to a document"
            )
    checked: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_TAG_KEY or "=" in key:
            raise InvalidArgumentError(
                f"a tag key is 1-{MAX_TAG_KEY} characters without '=', got {key!r}"
            )
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise InvalidArgumentError(
                f"tag {key!r}: a value is text of at most {MAX_TAG_VALUE} characters, "
                f"got {value!r}"
            )
        checked[key] = value
    return note, checked, [str(k) for k in remove]


def _annotated(
    current: Annotations, note: str | None, tags: Mapping[str, str], remove: Sequence[str]
) -> Annotations:
    merged = {k: v for k, v in current.tags.items() if k not in remove}
    merged.update(tags)
    if len(merged) > MAX_TAGS:
        raise InvalidArgumentError(
            f"at most {MAX_TAGS} tags on one study or trial, this would make {len(merged)}; "
            "remove some first"
        )
    if note is None:
        note = current.note
    return Annotations(note or None, merged)


# -- argument checks ------------------------------------------------------------------------------
def _check_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{what} must be a number, got {value!r}") from None
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(
            f"{what} must be a finite number, got {number!r}; report a finite value, or fail "
            "the trial instead"
        )
    return number


def _check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidArgumentError(f"metrics must be a mapping of name to number, got {metrics!r}")
    return {str(name): _check_number(v, f"metric {name!r}") for name, v in metrics.items()}


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(f"params must be a mapping of name to value, got {params!r}")
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise InvalidArgumentError(f"parameter names must be strings, got {name!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"parameter {name!r} must be finite, got {value!r}")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise InvalidArgumentError(
                f"parameter {name!r} must be a number, string or boolean, got {value!r}"
            )
        checked[name] = value
    return checked


def _check_json(data: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{what} must be JSON-serializable with finite numbers: {exc}"
        ) from None
    return data


#: How a tag naming a trial's file or directory ends; at most this many per call.
ARTIFACT_SUFFIXES = ("_dir", "_path", "_uri")
MAX_ARTIFACTS = 32


def _check_artifacts(artifacts: Mapping[str, str]) -> dict[str, str]:
    if not artifacts:
        raise InvalidArgumentError("no artifacts given: name at least one directory or file")
    if len(artifacts) > MAX_ARTIFACTS:
        raise InvalidArgumentError(
            f"{len(artifacts)} artifacts in one call; record at most {MAX_ARTIFACTS}"
        )
    checked = {}
    for key, value in artifacts.items():
        if not isinstance(key, str) or not key.endswith(ARTIFACT_SUFFIXES):
            raise InvalidArgumentError(
                f"artifact name {key!r} must end in _dir, _path or _uri (e.g. model_dir)"
            )
        if not isinstance(value, str) or not value or len(value) > 4096:
            raise InvalidArgumentError(
                f"artifact {key!r} must be a path or URI of 1 to 4096 characters"
            )
        checked[key] = value
    return checked


def _check_lease(lease_seconds: float | None) -> float | None:
    if lease_seconds is None:
        return None
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, (int, float))
        or not 0 <= lease_seconds <= MAX_LEASE_SECONDS
    ):
        raise InvalidArgumentError(
            f"lease_seconds must be a number of seconds in [0, {MAX_LEASE_SECONDS:g}], "
            f"got {lease_seconds!r}"
        )
    return float(lease_seconds)


def _check_id(value: int, what: str) -> int:
    """A trial number or attempt the database can hold (its columns are 32-bit)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        raise InvalidArgumentError(f"{what} must be an integer in [0, {_MAX_ID}], got {value!r}")
    return value


_MAX_ID = 2**31 - 1


def _check_worker(worker_id: str) -> str:
    if not isinstance(worker_id, str) or not worker_id or len(worker_id) > 256:
        raise InvalidArgumentError(
            f"worker_id must be a non-empty string of at most 256 characters, got {worker_id!r}"
        )
    return worker_id
