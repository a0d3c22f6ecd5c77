"""Statements per operation: the store's hot paths stay a few round trips each.

Counted with SQLAlchemy's ``before_cursor_execute`` event on the store's engine, which sees
every statement sent, BEGIN and COMMIT on SQLite included (they go through the driver's
cursor there; on PostgreSQL psycopg sends them itself, so the counts are lower).
"""

from __future__ import annotations

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
    assert _count(store, lambda: store.create_trial(name, {"x": 1})) == ["UPDATE", "INSERT"]
    assert _count(store, lambda: store.claim_trial(name, "w")) == ["UPDATE", "INSERT"]
    assert _count(store, lambda: store.renew_lease(name, 0, 1)) == ["UPDATE"]
    assert _count(store, lambda: store.add_measurement(name, 0, 1, 1, {"a": 1.0})) == ["INSERT"]
    assert _count(store, lambda: store.complete_trial(name, 0, 1, 1.0)) == ["UPDATE", "UPDATE"]
    # A repeated report: the guarded UPDATE matches nothing, one SELECT finds it is the same.
    assert _count(store, lambda: store.complete_trial(name, 0, 1, 1.0)) == ["UPDATE", "SELECT"]
    assert _count(store, lambda: store.expire_leases()) == ["SELECT"]
    assert _count(store, lambda: store.get_trial(name, 0)) == ["SELECT"]
    assert _count(store, lambda: store.get_study(name)) == ["SELECT"]
    assert _count(store, lambda: store.count_trials(name)) == ["SELECT"]
    assert _count(store, lambda: store.best_trials(name, 5)) == ["SELECT"]
    batch = [{"x": i} for i in range(50)]
    assert len(_count(store, lambda: store.create_trials(name, batch))) <= 3


def test_list_studies_is_two_queries_whatever_the_number_of_studies(store: Store) -> None:
    for _ in range(12):
        name = store.create_study(study_config()).name
        store.create_trial(name, {})
    assert len(store.list_studies()) == 12
    assert _count(store, store.list_studies) == ["SELECT", "SELECT"]
