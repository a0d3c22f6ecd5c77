"""The dashboard's read model: the answers of its JSON API.

Each function runs the store's read-only statements for the dashboard
(:mod:`hpsearch.store.reads`, next to the schema), hands the rows to the analysis
(:mod:`hpsearch.dashboard.analysis`, pure) and shapes the JSON: plain dicts and lists.
One connection per answer, nothing written.  The plot data, the costly answers, are
cached per study revision.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Select

from hpsearch.dashboard import analysis
from hpsearch.errors import InvalidArgumentError, NotFoundError
from hpsearch.records import NOTE_TAG, USER_TAGS_TAG, TrialState
from hpsearch.space import Goal, Rung, StudyConfig
from hpsearch.store.reads import Reads, count_trials, reads, trial_filter, trial_numbers

#: A worker counts as alive when it was heard from this recently (or holds a live lease).
WORKER_ALIVE_SECONDS = 60.0
#: Largest trial page the API serves.
MAX_PAGE_SIZE = 500
#: Sort keys of the trial table besides ``param:<name>``.
SORT_KEYS = ("number", "state", "value", "attempt", "started_at", "completed_at", "duration")
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
    note: str | None = None
    tags: Mapping[str, str] | None = None

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

    Three grouped queries in one transaction, whatever the number of studies or trials;
    two of them are the store's own (``Store.list_studies``).
    """
    sql = _reads(engine)
    with engine.connect() as conn:
        now = _now(conn, sql)
        studies = conn.execute(sql.all_studies).all()
        counts: dict[int, dict[str, int]] = {}
        extremes: dict[int, tuple[Any, Any]] = {}
        last: dict[int, float] = {}
        for study_id, state, n, low, high, updated in conn.execute(sql.study_stats):
            counts.setdefault(study_id, {})[state] = n
            if state == "COMPLETED":
                extremes[study_id] = (low, high)
            if updated is not None:
                last[study_id] = max(last.get(study_id, updated), updated)
        alive: dict[int, int] = dict(
            conn.execute(sql.workers_alive_by_study, {"b_now": now}).all()
        )
    rows = []
    for row in studies:
        ref = _ref(row)
        low, high = extremes.get(row.id, (None, None))
        by_state = {s.value: counts.get(row.id, {}).get(s.value, 0) for s in TrialState}
        rows.append(
            {
                "name": ref.name,
                "state": ref.state,
                "metric": ref.config.metric.name,
                "goal": ref.config.metric.goal.value,
                "best_value": high if ref.maximize else low,
                "trials": by_state,
                "total_trials": sum(by_state.values()),
                "max_trials": ref.config.budget.max_trials,
                "workers_alive": alive.get(row.id, 0),
                "last_activity": max(
                    x for x in (last.get(row.id), row.updated_at) if x is not None
                ),
                "created_at": row.created_at,
            }
        )
    return {"now": now, "studies": rows}


def study_detail(engine: Engine, name: str) -> dict[str, Any]:
    """A study's declaration, counts, best trial and live revision."""
    sql = _reads(engine)
    with engine.connect() as conn:
        ref = find_study(conn, name)
        now = _now(conn, sql)
        counts = {
            state: n
            for _, state, n in conn.execute(sql.study_counts, {"b_study": name})
            if state is not None  # a study without trials: one row, no state
        }
        best = conn.execute(
            sql.highest_value if ref.maximize else sql.lowest_value, {"b_study_id": ref.id}
        ).first()
        alive = conn.execute(sql.workers_alive, {"b_study_id": ref.id, "b_now": now}).scalar_one()
        revision = _revision(conn, sql, ref)
    by_state = {s.value: int(counts.get(s.value, 0)) for s in TrialState}
    return {
        "name": ref.name,
        "state": ref.state,
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "config": ref.config.to_dict(),
        "created_at": ref.created_at,
        "updated_at": ref.updated_at,
        "note": ref.note,
        "tags": dict(ref.tags or {}),
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
    sql = _reads(engine)
    with engine.connect() as conn:
        ref = find_study(conn, name)
        return {"revision": _revision(conn, sql, ref), "now": _now(conn, sql)}


# -- history and analysis ---------------------------------------------------------------------
def history(engine: Engine, name: str) -> dict[str, Any]:
    """Objective value of every finished trial that has one, by trial number, plus the
    best value so far after each COMPLETED trial (columnar: one list per field).

    Cached per study revision: a page polling an unchanged study costs one small query.
    """
    return _per_revision(engine, name, "history", _reads(engine).history, _history)


def _history(ref: StudyRef, rows: Sequence[Any]) -> dict[str, Any]:
    completed, stopped = analysis.history_columns(rows, ref.config.metric.goal)
    return {
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "completed": completed,
        "stopped": stopped,
    }


def front(engine: Engine, name: str) -> dict[str, Any]:
    """Every COMPLETED trial's objectives, feasibility and whether it is on the Pareto
    front (:func:`hpsearch.dashboard.analysis.front_columns`): the front plot of a study
    with several metrics.  Cached per study revision."""
    return _per_revision(engine, name, "front", _reads(engine).front, _front)


def _front(ref: StudyRef, rows: Sequence[Any]) -> dict[str, Any]:
    return {
        "metrics": [{"name": m.name, "goal": m.goal.value} for m in ref.config.metrics],
        "constraints": [str(c) for c in ref.config.constraints],
        "trials": analysis.front_columns(ref.config, rows),
    }


def parameters(engine: Engine, name: str) -> dict[str, Any]:
    """Parameter specs with importances, and every COMPLETED trial's parameters and value
    in columns: what parallel coordinates, slice and contour plots are drawn from.

    Importance is the share of the objective's variance each parameter explains on its
    own (epsilon-squared, see :func:`hpsearch.dashboard.analysis.importances`), normalised
    to sum to 1.  Cached per study revision.
    """
    return _per_revision(engine, name, "parameters", _reads(engine).completed_params, _parameters)


def _parameters(ref: StudyRef, rows: Sequence[Any]) -> dict[str, Any]:
    all_params = [r[2] or {} for r in rows]
    specs = analysis.parameter_specs(ref.config, all_params[-50:])
    numbers = [int(r[0]) for r in rows]
    values = [float(r[1]) for r in rows]
    columns = {spec["name"]: [p.get(spec["name"]) for p in all_params] for spec in specs}
    shares = analysis.importances(specs, columns, values)
    for spec in specs:
        spec["variance_explained"], spec["importance"] = shares[spec["name"]]
    return {
        "metric": ref.config.metric.name,
        "goal": ref.config.metric.goal.value,
        "importance_method": "epsilon_squared",
        "parameters": specs,
        "trials": {"number": numbers, "value": values, "params": columns},
    }


def intermediate(
    engine: Engine, name: str, *, metric: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """Measurement curves of the ``limit`` highest-numbered trials that reported any, for
    one metric (default: the study's objective).  A retried trial shows its latest attempt
    that reported the metric."""
    if not 1 <= limit <= 2000:
        raise InvalidArgumentError(f"limit must be between 1 and 2000, got {limit}")
    sql = _reads(engine)
    with engine.connect() as conn:
        ref = find_study(conn, name)
        wanted = metric or ref.config.metric.name
        rows = conn.execute(sql.curves, {"b_study_id": ref.id, "b_limit": limit}).all()
    curves, names = analysis.latest_attempt_curves(rows, wanted)
    return {"metric": wanted, "metrics": names, "trials": curves}


# -- trials ------------------------------------------------------------------------------------
def trial_page(engine: Engine, name: str, query: TrialQuery) -> dict[str, Any]:
    """One sorted, filtered page of a study's trials and the total that match."""
    sql = _reads(engine)
    with engine.connect() as conn:
        ref = find_study(conn, name)
        specs = {s["name"]: s for s in analysis.parameter_specs(ref.config)}
        for param, _, _ in query.ranges:
            if param in specs and not specs[param]["numeric"]:
                raise InvalidArgumentError(
                    f"parameter {param!r} is {specs[param]['kind']}: filter it with "
                    f"eq.{param}=VALUE, not a min/max range"
                )
        where = trial_filter(ref.id, [s.value for s in query.states], query.ranges, query.equals)
        total = int(conn.execute(count_trials(where)).scalar_one())
        sorted_param = (
            specs.get(query.sort[len("param:") :]) if query.sort.startswith("param:") else None
        )
        # Two steps: the page's numbers (narrow, skips ``offset`` rows cheaply), then the
        # full rows of those 50 trials only.
        page = list(
            conn.execute(
                trial_numbers(
                    where,
                    query.sort,
                    numeric=sorted_param is None or sorted_param["numeric"],
                    descending=query.descending,
                    offset=query.offset,
                    limit=query.limit,
                )
            ).scalars()
        )
        found = {
            r.number: r
            for r in conn.execute(sql.trial_rows, {"b_study_id": ref.id, "b_numbers": page})
        }
        rows = [found[n] for n in page if n in found]
    return {
        "total": total,
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
                "infeasible_reason": _shorten(r.infeasible_reason),
                "fidelity": (r.tags or {}).get(Rung.TAG),
            }
            for r in rows
        ],
    }


def trial_detail(engine: Engine, name: str, number: int) -> dict[str, Any]:
    """Everything about one trial: parameters, metrics, attempts, lease, measurements,
    artifact directories named by its tags."""
    sql = _reads(engine)
    with engine.connect() as conn:
        ref = find_study(conn, name)
        now = _now(conn, sql)
        trial = conn.execute(sql.trial, {"b_study": name, "b_number": number}).first()
        if trial is None:
            raise NotFoundError(
                f"study {name!r} has no trial {number}; list its trials at "
                f"/api/studies/{name}/trials"
            )
        attempts = [
            {
                "attempt": a.attempt,
                "worker_id": a.worker_id,
                "state": a.state,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "duration": _duration(a.started_at, a.ended_at),
                "failure_message": a.failure_message,
            }
            for a in conn.execute(sql.attempts, {"b_study": name, "b_number": number})
        ]
        measurements = [
            {
                "attempt": m.attempt,
                "step": m.step,
                "metrics": m.metrics,
                "created_at": m.created_at,
            }
            for m in conn.execute(sql.measurements, {"b_trial_id": trial.id})
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
        "infeasible_reason": trial.infeasible_reason,
        "created_at": trial.created_at,
        "started_at": trial.started_at,
        "completed_at": trial.completed_at,
        "duration": _duration(trial.started_at, trial.completed_at),
        "attempts": attempts,
        "measurements": measurements,
        "tags": tags,
        "note": tags.get(NOTE_TAG) if isinstance(tags.get(NOTE_TAG), str) else None,
        "user_tags": tags.get(USER_TAGS_TAG) or {},
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
    sql = _reads(engine)
    with engine.connect() as conn:
        now = _now(conn, sql)
        rows = conn.execute(sql.workers).all()
        running: dict[str, dict[str, Any]] = {}
        for r in conn.execute(sql.running_trials):
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
    row = conn.execute(reads(conn.dialect.name).study_by_name, {"b_study": name}).first()
    if row is None:
        raise NotFoundError(f"no study named {name!r}; the list of studies is at /api/studies")
    return _ref(row)


def _reads(engine: Engine) -> Reads:
    return reads(engine.dialect.name)


def _ref(row: Any) -> StudyRef:
    return StudyRef(
        id=row.id,
        name=row.name,
        state=row.state,
        config=StudyConfig.from_dict(row.config),
        created_at=row.created_at,
        updated_at=row.updated_at,
        note=row.note,
        tags=row.tags,
    )


def _now(conn: Connection, sql: Reads) -> float:
    return float(conn.execute(sql.now).scalar_one())


def _revision(conn: Connection, sql: Reads, ref: StudyRef) -> str:
    count, last = conn.execute(sql.trials_revision, {"b_study_id": ref.id}).one()
    newest = conn.execute(sql.newest_measurement, {"b_study_id": ref.id}).scalar_one()
    return f"{count}:{last or 0!r}:{newest or 0}:{ref.state}:{ref.updated_at!r}"


def _per_revision(
    engine: Engine,
    name: str,
    kind: str,
    statement: Select[Any],
    answer: Callable[[StudyRef, Sequence[Any]], dict[str, Any]],
) -> dict[str, Any]:
    """``answer`` of the study's rows from ``statement``, computed once per study revision
    and per ``kind``: while the revision holds, one small query serves it again."""
    with engine.connect() as conn:
        ref = find_study(conn, name)
        revision = _revision(conn, _reads(engine), ref)
        cached = _CACHE.get(engine, ref.id, kind, revision)
        if cached is not None:
            return cast(dict[str, Any], cached)
        rows = conn.execute(statement, {"b_study_id": ref.id}).all()
    result = answer(ref, rows)
    _CACHE.put(engine, ref.id, kind, revision, result)
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


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _shorten(text: str | None, limit: int = 200) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


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
