"""Statements per operation: the store's hot paths stay a few round trips each.

Counted with SQLAlchemy's ``before_cursor_execute`` event on the store's engine, which sees
every statement sent, BEGIN and COMMIT on SQLite included (they go through the driver's
cursor there; on PostgreSQL psycopg sends them itself, so the counts are lower).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from hpsearch.store import Store

from .helpers import study_config


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement.split(None, 1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _count(store: Store, op: Callable[[], object]) -> list[str]:
    with _statements(store) as sent:
        op()
    return [s for s in sent if s not in ("BEGIN", "COMMIT", "ROLLBACK")]


def test_trial_operations_take_one_or_two_statements(store: Store) -> None:
    name = store.create_study(study_config()).name
    postgres = store.engine.dialect.name == "postgresql"
    assert _count(store, lambda: store.create_trial(name, {"x": 1})) == ["UPDATE", "INSERT"]
    assert _count(store, lambda: store.claim_trial(name, "w")) == ["UPDATE", "INSERT"]
    assert _count(store, lambda: store.renew_lease(name, 0, 1)) == ["UPDATE"]
    assert _count(store, lambda: store.add_measurement(name, 0, 1, 1, {"a": 1.0})) == ["INSERT"]
    # PostgreSQL: the trial's and the attempt's UPDATE go as one statement (a WITH).
    leave = ["WITH"] if postgres else ["UPDATE", "UPDATE"]
    assert _count(store, lambda: store.complete_trial(name, 0, 1, 1.0)) == leave
    # A repeated report: the guarded UPDATE matches nothing, one SELECT finds it is the same.
    assert _count(store, lambda: store.complete_trial(name, 0, 1, 1.0)) == [leave[0], "SELECT"]
    assert _count(store, lambda: store.expire_leases()) == ["SELECT"]
    assert _count(store, lambda: store.get_trial(name, 0)) == ["SELECT"]
    assert _count(store, lambda: store.get_study(name)) == ["SELECT"]
    assert _count(store, lambda: store.count_trials(name)) == ["SELECT"]
    assert _count(store, lambda: store.best_trials(name, 5)) == ["SELECT"]
    batch = [{"x": i} for i in range(50)]
    assert len(_count(store, lambda: store.create_trials(name, batch))) <= 3


def test_a_trial_created_running_is_one_statement_on_postgres(store: Store) -> None:
    """Number, RUNNING trial and attempt row: one WITH on PostgreSQL, three on SQLite."""
    name = store.create_study(study_config()).name
    postgres = store.engine.dialect.name == "postgresql"
    sent = _count(store, lambda: store.create_trial(name, {"x": 1}, worker_id="w"))
    assert sent == (["WITH"] if postgres else ["UPDATE", "INSERT", "INSERT"])
    trial = store.create_trial(name, {"x": 2}, worker_id="w", lease_seconds=30)
    assert (trial.number, trial.state.value, trial.attempt, trial.worker_id) == (
        1,
        "RUNNING",
        1,
        "w",
    )
    assert trial.lease_expires_at is not None and trial.started_at is not None
    assert abs(trial.lease_expires_at - trial.started_at - 30) < 1
    [attempt] = store.list_attempts(name, 1)
    assert (attempt.attempt, attempt.worker_id, attempt.state.value) == (1, "w", "RUNNING")
    assert attempt.started_at == trial.started_at
    store.complete_trial(name, 1, 1, 0.5)
    [attempt] = store.list_attempts(name, 1)
    assert attempt.state.value == "COMPLETED" and attempt.ended_at is not None


def test_list_studies_is_two_queries_whatever_the_number_of_studies(store: Store) -> None:
    for _ in range(12):
        name = store.create_study(study_config()).name
        store.create_trial(name, {})
    assert len(store.list_studies()) == 12
    assert _count(store, store.list_studies) == ["SELECT", "SELECT"]


def test_driver_path_returns_what_sqlalchemy_returns(store: Store) -> None:
    """The hot-path statements run on the driver's cursor unless someone listens to the
    engine's statements; both ways give the same records."""
    name = store.create_study(study_config()).name

    def life(worker: str) -> list[Any]:
        params = {"lr": 0.01, "units": 7, "opt": "adam", "flag": True}
        created = store.create_trial(name, params, worker_id=worker, lease_seconds=30)
        renewed = store.renew_lease(name, created.number, 1, lease_seconds=60)
        measured = store.add_measurement(name, created.number, 1, 3, {"score": 0.25, "x": -1.5})
        done = store.complete_trial(name, created.number, 1, 0.75, {"score": 0.75, "y": 2.0})
        failed_one = store.create_trial(name, params, worker_id=worker)
        failed = store.fail_trial(name, failed_one.number, 1, "boom", retry=True)
        records: list[Any] = [created, renewed, done, failed]
        plain = [
            {
                f.name: getattr(r, f.name)
                for f in dataclasses.fields(r)
                if not f.name.endswith("_at") and f.name != "number"
            }
            for r in records
        ]
        return [*plain, measured.metrics, measured.step]

    fast = life("w-fast")
    with _statements(store) as sent:
        slow = life("w-slow")
    assert sent, "the listener saw no statement"
    for a, b in zip(fast, slow, strict=True):
        if isinstance(a, dict) and "worker_id" in a:
            a, b = {**a, "worker_id": None}, {**b, "worker_id": None}
        assert a == b
