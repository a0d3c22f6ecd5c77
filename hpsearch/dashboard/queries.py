"""Read-only SQL queries behind the dashboard's JSON API.

The store's public interface returns whole records one study at a time; the dashboard
needs other shapes: one grouped query over every study, a trial page that is sorted,
filtered and counted in SQL, and columnar history that stays fast at 10,000 trials.
These queries read the store's tables (``hpsearch.store.models``) through its engine and
never write.  Every function takes an :class:`~sqlalchemy.Engine` and returns plain
JSON-ready dicts and lists.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    case,
    distinct,
    func,
    select,
)

from hpsearch.errors import InvalidArgumentError, NotFoundError
from hpsearch.records import TrialState
from hpsearch.space import Goal, StudyConfig
from hpsearch.store.engine import db_now
from hpsearch.store.models import AttemptRow, MeasurementRow, StudyRow, TrialRow, WorkerRow

logger = logging.getLogger(__name__)

#: A worker counts as alive when it was heard from this recently (or holds a live lease).
WORKER_ALIVE_SECONDS = 60.0
#: Completed trials (with the parameter set) below which no importance is given.
MIN_TRIALS_FOR_IMPORTANCE = 10
#: Largest trial page the API serves.
MAX_PAGE_SIZE = 500
#: Sort keys of the trial table besides ``param:<name>``.
SORT_KEYS = ("number", "state", "value", "attempt", "started_at", "completed_at", "duration")
NUMERIC_KINDS = ("double", "integer", "discrete")
#: Tag keys that name a trial's artifact directories, in the order they are shown.
ARTIFACT_TAGS = (
    ("model_dir", "model"),
    ("AIP_MODEL_DIR", "model"),
    ("checkpoint_dir", "checkpoints"),
    ("AIP_CHECKPOINT_DIR", "checkpoints"),
    ("log_dir", "logs"),
    ("tensorboard_log_dir", "logs"),
    ("AIP_TENSORBOARD_LOG_DIR", "logs"),
    ("trial_dir", "trial"),
    ("base_dir", "trial"),
)


@dataclass(frozen=True)
class StudyRef:
    """A study as the queries need it: its row id and parsed declaration."""

    id: int
    name: str
    state: str
    config: StudyConfig
    created_at: float
    updated_at: float

    @property
    def maximize(self) -> bool:
        return self.config.metric.goal == Goal.MAXIMIZE


@dataclass(frozen=True)
class TrialQuery:
    """One page of the trial table: sort, filters and window."""

    offset: int = 0
    limit: int = 50
    sort: str = "number"
    descending: bool = True
    states: tuple[TrialState, ...] = ()
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()  # (param, min, max)
    equals: tuple[tuple[str, str], ...] = ()  # (param, value) for categorical parameters

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise InvalidArgumentError(f"offset must be >= 0, got {self.offset}")
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidArgumentError(
                f"limit must be between 1 and {MAX_PAGE_SIZE}, got {self.limit}"
            )
        if self.sort not in SORT_KEYS and not self.sort.startswith("param:"):
            raise InvalidArgumentError(
                f"unknown sort key {self.sort!r}; use one of {', '.join(SORT_KEYS)} "
                "or param:<name>"
            )


# -- studies -----------------------------------------------------------------------------------
def list_studies(engine: Engine) -> dict[str, Any]:
    """Every study with its trial counts by state, best value, workers alive, last activity.

    Four grouped queries in one transaction, whatever the number of studies or trials.
    """
    with engine.connect() as conn:
        now = _now(conn)
        studies = conn.execute(select(StudyRow).order_by(StudyRow.name)).all()
        counts: dict[int, dict[str, int]] = {}
        for study_id, state, n in conn.execute(
            select(TrialRow.study_id, TrialRow.state, func.count()).group_by(
                TrialRow.study_id, TrialRow.state
            )
        ):
            counts.setdefault(study_id, {})[state] = n
        extremes = {
            row.study_id: (row.lo, row.hi, row.last)
            for row in conn.execute(
                select(
                    TrialRow.study_id,
                    func.min(case((TrialRow.state == "COMPLETED", TrialRow.value))).label("lo"),
                    func.max(case((TrialRow.state == "COMPLETED", TrialRow.value))).label("hi"),
                    func.max(TrialRow.updated_at).label("last"),
                ).group_by(TrialRow.study_id)
            )
        }
        alive = dict(
            conn.execute(
                select(TrialRow.study_id, func.count(distinct(TrialRow.worker_id)))
                .where(TrialRow.state == "RUNNING", TrialRow.lease_expires_at > now)
                .group_by(TrialRow.study_id)
            ).all()
        )
    rows = []
    for row in studies:
        ref = _ref(row)
        lo, hi, last = extremes.get(row.id, (None, None, None))
        by_state = {s.value: counts.get(row.id, {}).get(s.value, 0) for s in TrialState}
        rows.append(
            {
                "name": ref.name,
                "state": ref.state,
                "metric": ref.config.metric.name,
                "goal": ref.config.metric.goal.value,
                "best_value": hi if ref.maximize else lo,
                "trials": by_state,
                "total_trials": sum(by_state.values()),
                "max_trials": ref.config.budget.max_trials,
                "workers_alive": alive.get(row.id, 0),
                "last_activity": max(x for x in (last, row.updated_at) if x is not None),
                "created_at": row.created_at,
            }
        )
    return {"now": now, "studies": rows}


def study_detail(engine: Engine, name: str) -> dict[str, Any]:
    """A study's declaration, counts, best trial and live revision."""
    with engine.connect() as conn:
        ref = find_study(conn, name)
        now = _now(conn)
        counts = dict(
            conn.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.study_id == ref.id)
                .group_by(TrialRow.state)
            ).all()
        )
        order = TrialRow.value.desc() if ref.maximize else TrialRow.value.asc()
        best = conn.execute(
            select(TrialRow.number, TrialRow.value, TrialRow.params)
            .where(
                TrialRow.study_id == ref.id,
                TrialRow.state == "COMPLETED",
                TrialRow.value.is_not(None),
            )
            .order_by(order, TrialRow.number)
            .limit(1)
        ).first()
        alive = conn.execute(
            select(func.count(distinct(TrialRow.worker_id))).where(
                TrialRow.study_id == ref.id,
                TrialRow.state == "RUNNING",
                TrialRow.lease_expires_at > now,
            )
        ).scalar_one()
        revision = _revision(conn, ref)
    by_state = {s.value: int(counts.get(s.value, 0)) for s in TrialState}
    return {
        "name": ref.name,
        "state": ref.state,
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "config": ref.config.to_dict(),
        "created_at": ref.created_at,
        "updated_at": ref.updated_at,
        "trials": by_state,
        "total_trials": sum(by_state.values()),
        "workers_alive": alive,
        "best": None
        if best is None
        else {"number": best.number, "value": best.value, "params": best.params},
        "revision": revision,
        "now": now,
    }


def study_revision(engine: Engine, name: str) -> dict[str, Any]:
    """A cheap token that changes whenever the study's trials or measurements change.

    The page polls it and refetches only when it moves.
    """
    with engine.connect() as conn:
        ref = find_study(conn, name)
        return {"revision": _revision(conn, ref), "now": _now(conn)}


# -- history and analysis ---------------------------------------------------------------------
def history(engine: Engine, name: str) -> dict[str, Any]:
    """Objective value of every finished trial that has one, by trial number, plus the
    best value so far after each COMPLETED trial (columnar: one list per field).

    Cached per study revision: a page polling an unchanged study costs one small query.
    """
    with engine.connect() as conn:
        ref = find_study(conn, name)
        revision = _revision(conn, ref)
        cached = _CACHE.get(engine, ref.id, "history", revision)
        if cached is not None:
            return cast(dict[str, Any], cached)
        # Narrow on purpose (no parameters to decode): the history is the first plot drawn.
        rows = conn.execute(
            select(TrialRow.number, TrialRow.state, TrialRow.value)
            .where(
                TrialRow.study_id == ref.id,
                TrialRow.state.in_(("COMPLETED", "STOPPED")),
                TrialRow.value.is_not(None),
            )
            .order_by(TrialRow.number)
        ).all()
    completed: dict[str, list[Any]] = {"number": [], "value": [], "best": []}
    stopped: dict[str, list[Any]] = {"number": [], "value": []}
    best = math.nan
    for number, state, raw in rows:
        value = float(raw or 0.0)  # the query selects non-NULL values only
        if state == "COMPLETED":
            if math.isnan(best) or ref.config.metric.goal.better(value, best):
                best = value
            completed["number"].append(number)
            completed["value"].append(value)
            completed["best"].append(best)
        else:
            stopped["number"].append(number)
            stopped["value"].append(value)
    result = {
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "completed": completed,
        "stopped": stopped,
    }
    _CACHE.put(engine, ref.id, "history", revision, result)
    return result


def parameters(engine: Engine, name: str) -> dict[str, Any]:
    """Parameter specs with importances, and every COMPLETED trial's parameters and value
    in columns: what parallel coordinates, slice and contour plots are drawn from.

    Importance is the share of the objective's variance each parameter explains on its
    own (epsilon-squared: numeric parameters binned by quantile, others grouped by value,
    corrected for what that many groups explain by chance), normalised to sum to 1: fast
    and model-free, but blind to interactions between parameters.  Cached per revision.
    """
    with engine.connect() as conn:
        ref = find_study(conn, name)
        revision = _revision(conn, ref)
        cached = _CACHE.get(engine, ref.id, "parameters", revision)
        if cached is not None:
            return cast(dict[str, Any], cached)
        rows = conn.execute(
            select(TrialRow.number, TrialRow.value, TrialRow.params)
            .where(
                TrialRow.study_id == ref.id,
                TrialRow.state == "COMPLETED",
                TrialRow.value.is_not(None),
            )
            .order_by(TrialRow.number)
        ).all()
    all_params = [r[2] or {} for r in rows]
    specs = parameter_specs(ref, all_params[-50:])
    numbers = [int(r[0]) for r in rows]
    values = [float(r[1]) for r in rows]
    columns = {spec["name"]: [p.get(spec["name"]) for p in all_params] for spec in specs}
    raw = {
        spec["name"]: _variance_explained(columns[spec["name"]], values, spec) for spec in specs
    }
    total = sum(v for v in raw.values() if v is not None)
    for spec in specs:
        share = raw[spec["name"]]
        spec["variance_explained"] = share
        spec["importance"] = None if share is None or total <= 0 else share / total
    result = {
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "importance_method": "epsilon_squared",
        "parameters": specs,
        "trials": {"number": numbers, "value": values, "params": columns},
    }
    _CACHE.put(engine, ref.id, "parameters", revision, result)
    return result


class _RevisionCache:
    """The last answer per (engine, study, kind), valid while the study's revision holds.

    Bounded to ``max_studies`` studies per engine (least recently used go first).
    Answers are shared between threads and must not be mutated by callers.
    """

    def __init__(self, max_studies: int = 8) -> None:
        self._lock = threading.Lock()
        self._max = max_studies
        self._by_engine: weakref.WeakKeyDictionary[
            Engine, OrderedDict[int, dict[str, tuple[str, Any]]]
        ] = weakref.WeakKeyDictionary()

    def get(self, engine: Engine, study_id: int, kind: str, revision: str) -> Any:
        with self._lock:
            studies = self._by_engine.get(engine)
            entry = studies.get(study_id) if studies is not None else None
            if entry is None or kind not in entry or entry[kind][0] != revision:
                return None
            studies.move_to_end(study_id)  # type: ignore[union-attr]
            return entry[kind][1]

    def put(self, engine: Engine, study_id: int, kind: str, revision: str, value: Any) -> None:
        with self._lock:
            studies = self._by_engine.setdefault(engine, OrderedDict())
            entry = studies.setdefault(study_id, {})
            entry[kind] = (revision, value)
            studies.move_to_end(study_id)
            while len(studies) > self._max:
                studies.popitem(last=False)


_CACHE = _RevisionCache()


def parameter_specs(ref: StudyRef, sample: Any = ()) -> list[dict[str, Any]]:
    """The declared parameters, then any found only in trials (Keras Tuner spaces grow)."""
    specs: list[dict[str, Any]] = []
    for param in ref.config.space:
        spec: dict[str, Any] = {"name": param.name, "kind": param.kind}
        if param.kind in ("double", "integer"):
            spec.update(min=param.min, max=param.max, scale=param.scale.value)  # type: ignore[union-attr]
        elif param.kind in ("categorical", "discrete"):
            spec["values"] = list(param.values)  # type: ignore[union-attr]
        elif param.kind == "boolean":
            spec["values"] = [False, True]
        elif param.kind == "fixed":
            spec["values"] = [param.value]  # type: ignore[union-attr]
        specs.append(spec)
    known = {s["name"] for s in specs}
    for params in sample:
        for key, value in params.items():
            if key not in known:
                known.add(key)
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                specs.append({"name": key, "kind": "double" if numeric else "categorical"})
    for spec in specs:
        spec["numeric"] = spec["kind"] in NUMERIC_KINDS
    return specs


def intermediate(
    engine: Engine, name: str, *, metric: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """Measurement curves of the ``limit`` highest-numbered trials that reported any, for
    one metric (default: the study's objective).  A retried trial shows its latest attempt
    that reported the metric."""
    if not 1 <= limit <= 2000:
        raise InvalidArgumentError(f"limit must be between 1 and 2000, got {limit}")
    with engine.connect() as conn:
        ref = find_study(conn, name)
        wanted = metric or ref.config.metric.name
        picked = (
            select(TrialRow.id)
            .where(
                TrialRow.study_id == ref.id,
                select(MeasurementRow.id).where(MeasurementRow.trial_id == TrialRow.id).exists(),
            )
            .order_by(TrialRow.number.desc())
            .limit(limit)
            .subquery()
        )
        rows = conn.execute(
            select(
                TrialRow.number,
                TrialRow.state,
                MeasurementRow.attempt,
                MeasurementRow.step,
                MeasurementRow.metrics,
            )
            .join(MeasurementRow, MeasurementRow.trial_id == TrialRow.id)
            .where(TrialRow.id.in_(select(picked.c.id)))
            .order_by(TrialRow.number, MeasurementRow.attempt.desc(), MeasurementRow.step)
        ).all()
    curves: dict[int, dict[str, Any]] = {}
    names: set[str] = set()
    for number, state, attempt, step, metrics in rows:
        names.update(metrics)
        value = metrics.get(wanted)
        if value is None:
            continue
        curve = curves.setdefault(
            number,
            {"number": number, "state": state, "attempt": attempt, "step": [], "value": []},
        )
        if curve["attempt"] != attempt:  # an earlier attempt: the latest one is shown
            continue
        curve["step"].append(step)
        curve["value"].append(value)
    return {
        "metric": wanted,
        "metrics": sorted(names),
        "trials": [curves[n] for n in sorted(curves)],
    }


# -- trials ------------------------------------------------------------------------------------
def trial_page(engine: Engine, name: str, query: TrialQuery) -> dict[str, Any]:
    """One sorted, filtered page of a study's trials and the total that match."""
    with engine.connect() as conn:
        ref = find_study(conn, name)
        specs = {s["name"]: s for s in parameter_specs(ref)}
        where: list[ColumnElement[bool]] = [TrialRow.study_id == ref.id]
        if query.states:
            where.append(TrialRow.state.in_([s.value for s in query.states]))
        for param, lo, hi in query.ranges:
            column = TrialRow.params[param].as_float()
            if lo is not None:
                where.append(column >= lo)
            if hi is not None:
                where.append(column <= hi)
            if param in specs and not specs[param]["numeric"]:
                raise InvalidArgumentError(
                    f"parameter {param!r} is {specs[param]['kind']}: filter it with "
                    f"eq.{param}=VALUE, not a min/max range"
                )
        for param, value in query.equals:
            where.append(TrialRow.params[param].as_string() == value)
        condition = and_(*where)
        total = conn.execute(select(func.count()).select_from(TrialRow).where(condition))
        total_count = int(total.scalar_one())
        key = _sort_column(query.sort, specs)
        ordered = key.desc() if query.descending else key.asc()
        order = (
            [ordered]
            if query.sort == "number"  # never NULL: the (study_id, number) index serves it
            else [key.is_(None), ordered, TrialRow.number.desc()]  # NULLs last either way
        )
        # Two steps: the page's numbers (narrow, skips ``offset`` rows cheaply), then the
        # full rows of those 50 trials only.
        page = list(
            conn.execute(
                select(TrialRow.number)
                .where(condition)
                .order_by(*order)
                .offset(query.offset)
                .limit(query.limit)
            ).scalars()
        )
        found = {
            r.number: r
            for r in conn.execute(
                select(
                    TrialRow.number,
                    TrialRow.state,
                    TrialRow.value,
                    TrialRow.params,
                    TrialRow.metrics,
                    TrialRow.attempt,
                    TrialRow.worker_id,
                    TrialRow.created_at,
                    TrialRow.started_at,
                    TrialRow.completed_at,
                    TrialRow.failure_message,
                ).where(TrialRow.study_id == ref.id, TrialRow.number.in_(page))
            )
        }
        rows = [found[n] for n in page if n in found]
    return {
        "total": total_count,
        "offset": query.offset,
        "limit": query.limit,
        "sort": query.sort,
        "order": "desc" if query.descending else "asc",
        "parameters": _page_parameters(specs, rows),
        "trials": [
            {
                "number": r.number,
                "state": r.state,
                "value": r.value,
                "params": r.params,
                "metrics": r.metrics or {},
                "attempt": r.attempt,
                "worker_id": r.worker_id,
                "created_at": r.created_at,
                "started_at": r.started_at,
                "completed_at": r.completed_at,
                "duration": _duration(r.started_at, r.completed_at),
                "failure_message": _shorten(r.failure_message),
            }
            for r in rows
        ],
    }


def trial_detail(engine: Engine, name: str, number: int) -> dict[str, Any]:
    """Everything about one trial: parameters, metrics, attempts, lease, measurements,
    artifact directories named by its tags."""
    with engine.connect() as conn:
        ref = find_study(conn, name)
        now = _now(conn)
        trial = conn.execute(
            select(TrialRow).where(TrialRow.study_id == ref.id, TrialRow.number == number)
        ).first()
        if trial is None:
            raise NotFoundError(
                f"study {name!r} has no trial {number}; list its trials at "
                f"/api/studies/{name}/trials"
            )
        attempts = conn.execute(
            select(AttemptRow).where(AttemptRow.trial_id == trial.id).order_by(AttemptRow.attempt)
        ).all()
        attempt_rows = [
            {
                "attempt": a.attempt,
                "worker_id": a.worker_id,
                "state": a.state,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "duration": _duration(a.started_at, a.ended_at),
                "failure_message": a.failure_message,
            }
            for a in attempts
        ]
        measurements = [
            {
                "attempt": m.attempt,
                "step": m.step,
                "metrics": m.metrics,
                "created_at": m.created_at,
            }
            for m in conn.execute(
                select(MeasurementRow)
                .where(MeasurementRow.trial_id == trial.id)
                .order_by(MeasurementRow.attempt, MeasurementRow.step)
            ).all()
        ]
    tags = dict(trial.tags or {})
    lease = None
    if trial.state == "RUNNING" and trial.lease_expires_at is not None:
        lease = {
            "worker_id": trial.worker_id,
            "attempt": trial.attempt,
            "expires_at": trial.lease_expires_at,
            "seconds_left": trial.lease_expires_at - now,
        }
    return {
        "study": ref.name,
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "number": trial.number,
        "state": trial.state,
        "value": trial.value,
        "params": trial.params,
        "metrics": trial.metrics or {},
        "attempt": trial.attempt,
        "worker_id": trial.worker_id,
        "lease": lease,
        "failure_message": trial.failure_message,
        "created_at": trial.created_at,
        "started_at": trial.started_at,
        "completed_at": trial.completed_at,
        "duration": _duration(trial.started_at, trial.completed_at),
        "attempts": attempt_rows,
        "measurements": measurements,
        "tags": tags,
        "artifacts": artifacts(tags),
        "now": now,
    }


def artifacts(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    """Model, checkpoint and log directories named by a trial's tags, first name wins."""
    found: dict[str, dict[str, str]] = {}
    for key, kind in ARTIFACT_TAGS:
        value = tags.get(key)
        if isinstance(value, str) and value and kind not in found:
            found[kind] = {"kind": kind, "path": value, "tag": key}
    for key, value in tags.items():  # other *_dir / *_path / *_uri tags, e.g. export_dir
        if (
            isinstance(value, str)
            and value
            and key.endswith(("_dir", "_path", "_uri"))
            and all(a["tag"] != key for a in found.values())
            and key not in dict(ARTIFACT_TAGS)
        ):
            found[key] = {"kind": key, "path": value, "tag": key}
    return list(found.values())


# -- workers -----------------------------------------------------------------------------------
def workers(engine: Engine) -> dict[str, Any]:
    """Every worker with its last heartbeat, whether it is alive and its running trial."""
    with engine.connect() as conn:
        now = _now(conn)
        rows = conn.execute(select(WorkerRow).order_by(WorkerRow.last_seen.desc())).all()
        running: dict[str, dict[str, Any]] = {}
        for r in conn.execute(
            select(
                TrialRow.worker_id,
                StudyRow.name,
                TrialRow.number,
                TrialRow.attempt,
                TrialRow.started_at,
                TrialRow.lease_expires_at,
            )
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(TrialRow.state == "RUNNING", TrialRow.worker_id.is_not(None))
            .order_by(TrialRow.started_at)
        ):
            running[r.worker_id] = {
                "study": r.name,
                "number": r.number,
                "attempt": r.attempt,
                "started_at": r.started_at,
                "lease_expires_at": r.lease_expires_at,
                "lease_live": r.lease_expires_at is not None and r.lease_expires_at > now,
            }
    out = []
    for w in rows:
        current = running.pop(w.id, None)
        live_lease = bool(current and current["lease_live"])
        out.append(
            {
                "id": w.id,
                "host": w.host,
                "last_seen": w.last_seen,
                "seconds_since_seen": now - w.last_seen,
                "alive": live_lease or now - w.last_seen <= WORKER_ALIVE_SECONDS,
                "current_trial": current,
                "info": w.info or {},
            }
        )
    for worker_id, current in running.items():  # a lease holder that never registered
        out.append(
            {
                "id": worker_id,
                "host": None,
                "last_seen": None,
                "seconds_since_seen": None,
                "alive": current["lease_live"],
                "current_trial": current,
                "info": {},
            }
        )
    return {"now": now, "alive_seconds": WORKER_ALIVE_SECONDS, "workers": out}


# -- helpers -----------------------------------------------------------------------------------
def find_study(conn: Connection, name: str) -> StudyRef:
    """The study called ``name``; NotFoundError naming the studies that exist otherwise."""
    row = conn.execute(select(StudyRow).where(StudyRow.name == name)).first()
    if row is None:
        raise NotFoundError(f"no study named {name!r}; the list of studies is at /api/studies")
    return _ref(row)


def _ref(row: Any) -> StudyRef:
    return StudyRef(
        id=row.id,
        name=row.name,
        state=row.state,
        config=StudyConfig.from_dict(row.config),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _now(conn: Connection) -> float:
    return float(conn.execute(select(db_now())).scalar_one())


def _revision(conn: Connection, ref: StudyRef) -> str:
    count, last = conn.execute(
        select(func.count(), func.max(TrialRow.updated_at)).where(TrialRow.study_id == ref.id)
    ).one()
    # Measurements do not touch their trial's row: the newest measurement id catches them.
    newest = conn.execute(
        select(func.max(MeasurementRow.id))
        .join(TrialRow, TrialRow.id == MeasurementRow.trial_id)
        .where(TrialRow.study_id == ref.id)
    ).scalar_one()
    return f"{count}:{last or 0!r}:{newest or 0}:{ref.state}:{ref.updated_at!r}"


def _page_parameters(specs: Mapping[str, Any], rows: Sequence[Any]) -> list[str]:
    """The declared parameter names, then any others the page's trials carry."""
    names = list(specs)
    seen = set(names)
    for row in rows:
        for key in row.params or {}:
            if key not in seen:
                seen.add(key)
                names.append(key)
    return names


def _sort_column(sort: str, specs: Mapping[str, Mapping[str, Any]]) -> ColumnElement[Any]:
    if sort.startswith("param:"):
        name = sort[len("param:") :]
        spec = specs.get(name)
        if spec is None or spec["numeric"]:
            return TrialRow.params[name].as_float()
        return TrialRow.params[name].as_string()
    if sort == "duration":
        return TrialRow.completed_at - TrialRow.started_at
    column: ColumnElement[Any] = getattr(TrialRow, sort)
    return column


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _shorten(text: str | None, limit: int = 200) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _variance_explained(
    column: Sequence[Any], values: Sequence[float], spec: Mapping[str, Any]
) -> float | None:
    """Epsilon-squared of the objective grouped by one parameter's value (or value bin).

    Unlike plain eta-squared it subtracts what ``k`` groups explain by chance, so a
    parameter with a distinct value per trial does not look perfectly important.
    """
    keep = [i for i, x in enumerate(column) if x is not None and math.isfinite(values[i])]
    if len(keep) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    y = np.array([values[i] for i in keep], dtype=float)
    total = float(np.sum((y - y.mean()) ** 2))
    if total <= 0.0:
        return None
    xs = [column[i] for i in keep]
    bins = max(2, min(10, len(xs) // 5))
    groups: np.ndarray[Any, Any]
    if spec.get("numeric") and len(set(xs)) > bins:
        x = np.array(xs, dtype=float)
        edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
        groups = np.searchsorted(edges[1:-1], x, side="right")
    else:
        _, groups = np.unique(np.array([str(v) for v in xs]), return_inverse=True)
    sizes = np.bincount(groups)
    sums = np.bincount(groups, weights=y)
    occupied = sizes > 0
    k, n = int(occupied.sum()), len(y)
    if k < 2:
        return 0.0
    if n <= k:
        return None
    means = sums[occupied] / sizes[occupied]
    between = float(np.sum(sizes[occupied] * (means - y.mean()) ** 2))
    within_mean_square = (total - between) / (n - k)
    return max(0.0, (between - (k - 1) * within_mean_square) / total)


__all__ = [
    "MAX_PAGE_SIZE",
    "SORT_KEYS",
    "TrialQuery",
    "artifacts",
    "find_study",
    "history",
    "intermediate",
    "list_studies",
    "parameters",
    "study_detail",
    "study_revision",
    "trial_detail",
    "trial_page",
    "workers",
]
