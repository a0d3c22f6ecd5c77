"""Transactions that lose a lock race are retried, and what cannot be retried says why."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from hpsearch.errors import StorageError
from hpsearch.store import upgrade
from hpsearch.store.engine import make_engine
from hpsearch.store.transactions import MAX_TRANSACTION_ATTEMPTS, run_transaction


def test_sqlite_busy_beyond_the_timeout_is_retried(sqlite_url: str) -> None:
    """With a 50 ms busy timeout, a write lock held for 0.4 s makes BEGIN IMMEDIATE fail
    with "database is locked"; the transaction is retried with backoff and succeeds."""
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url, sqlite_busy_timeout=0.05)
    holder = sqlite3.connect(
        sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
    release.start()
    runs: list[float] = []

    def body(conn: Connection) -> int:
        runs.append(time.monotonic())
        conn.execute(
            text("INSERT INTO workers (id, host, last_seen, info) VALUES ('w', NULL, 0, '{}')")
        )
        return 1

    try:
        started = time.monotonic()
        assert run_transaction(engine, body, write=True) == 1
        assert time.monotonic() - started >= 0.35
        assert len(runs) == 1  # the lock was taken up front: the body ran once, after it
    finally:
        release.join()
        holder.close()
        engine.dispose()


def test_sqlite_lock_held_too_long_is_a_storage_error(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url, sqlite_busy_timeout=0.01)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match=r"database is locked.*another process held"):
            run_transaction(engine, lambda conn: None, write=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    assert MAX_TRANSACTION_ATTEMPTS > 1


@pytest.mark.postgres
def test_postgres_deadlock_victim_is_retried(postgres_url: str) -> None:
    """Two transactions lock two rows in opposite orders; PostgreSQL aborts one with a
    deadlock (40P01); it is run again and both commit."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workers (id, host, last_seen, info) "
                "VALUES ('a', NULL, 0, '{}'), ('b', NULL, 0, '{}')"
            )
        )
    both_hold_one = threading.Barrier(2)
    runs = {"ab": 0, "ba": 0}

    def locker(first: str, second: str) -> str:
        def body(conn: Connection) -> str:
            runs[first + second] += 1
            conn.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
            conn.execute(text("UPDATE workers SET last_seen = 1 WHERE id = :id"), {"id": first})
            if runs[first + second] == 1:
                both_hold_one.wait(timeout=10)
            conn.execute(text("UPDATE workers SET last_seen = 2 WHERE id = :id"), {"id": second})
            return first + second

        return run_transaction(engine, body, write=True, what="deadlock test")

    results: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda f=f, s=s: results.update({f + s: locker(f, s)}))
        for f, s in (("a", "b"), ("b", "a"))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        engine.dispose()
    assert results == {"ab": "ab", "ba": "ba"}
    assert sorted(runs.values()) == [1, 2]  # exactly one victim, run a second time


@pytest.mark.postgres
def test_a_dropped_postgres_connection_is_replaced(postgres_url: str) -> None:
    """The server ends a pooled connection (restart, idle timeout): the next call fails on
    it, the pool is invalidated and the call is run again on a new connection."""
    from hpsearch.store import Store

    from .helpers import study_config

    with Store(postgres_url, pool_size=1, max_overflow=0) as store:
        name = store.create_study(study_config()).name
        with store.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin = make_engine(postgres_url, pool_size=1, max_overflow=0)
        try:
            with admin.connect() as conn:
                assert conn.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
                ).scalar()
        finally:
            admin.dispose()
        time.sleep(0.1)
        assert store.create_trial(name, {}).number == 0
        assert store.get_study(name).name == name


@pytest.mark.postgres
def test_a_kept_write_connection_ended_by_the_server_is_replaced(postgres_url: str) -> None:
    """Writers keep their connection between transactions: when the server ends it (a
    restart, an idle timeout), the next write fails on it, runs again on a new one, and
    nothing is lost or written twice."""
    from sqlalchemy.engine import make_url

    from hpsearch.store import Store

    from .helpers import study_config

    app = f"hps-kept-{time.monotonic_ns()}"
    url = make_url(postgres_url).update_query_dict({"application_name": app})
    with Store(url.render_as_string(hide_password=False)) as store:
        name = store.create_study(study_config()).name
        assert store.create_trial(name, {}).number == 0  # its connection is kept
        admin = make_engine(postgres_url, pool_size=1, max_overflow=0)
        try:
            with admin.connect() as conn:
                ended = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :app"
                    ),
                    {"app": app},
                ).scalar_one()
        finally:
            admin.dispose()
        assert ended >= 1
        time.sleep(0.1)
        assert store.create_trial(name, {}).number == 1
        assert [t.number for t in store.list_trials(name)] == [0, 1]


def test_a_kept_write_connection_goes_back_to_the_pool_when_old(storage_url: str) -> None:
    """A kept write connection serves the next transactions until ``max_age``; then it is
    closed (back to the pool, which recycles as configured) and a fresh one is used."""
    from hpsearch.store.transactions import WriteConnections

    engine = make_engine(storage_url)
    kept = WriteConnections(engine, keep=1, max_age=3.0)  # "young" with a 3 s margin

    def one(conn: Connection) -> int:
        return int(conn.execute(text("SELECT 1")).scalar_one())

    try:
        with kept.connection() as first:
            pass
        with kept.connection() as again:
            assert again is first  # young: kept between transactions
        time.sleep(3.1)
        with kept.connection() as fresh:
            assert fresh is not first and first.closed
        assert run_transaction(engine, one, write=True, connections=kept) == 1
    finally:
        kept.close()
        engine.dispose()


@pytest.mark.postgres
def test_a_commit_cut_off_and_aborted_by_the_server_is_run_again(postgres_url: str) -> None:
    """The connection dies while COMMIT runs (the server's backend is ended mid-commit):
    the store asks the server what became of the transaction (``txid_status``); it was
    rolled back, so the transaction runs again and commits once, with no error."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
            )
        )
        # Runs at COMMIT: the commit takes half a second, long enough to be cut off.
        conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON probe DEFERRABLE "
                "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        )
    runs: list[int] = []
    killed: list[int] = []

    def body(conn: Connection) -> str:
        runs.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        conn.execute(text("INSERT INTO probe (id) VALUES (1)"))
        return "inserted"

    def kill_the_first_commit() -> None:
        deadline = time.monotonic() + 10
        with engine.connect() as admin:
            while time.monotonic() < deadline and not killed:
                pid = admin.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE query = 'COMMIT' "
                        "AND state = 'active' AND wait_event = 'PgSleep'"
                    )
                ).scalar()
                if pid is not None:
                    admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    killed.append(pid)
                admin.rollback()
                time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_commit)
    killer.start()
    try:
        assert run_transaction(engine, body, write=True) == "inserted"
    finally:
        killer.join()
    try:
        assert killed and killed[0] == runs[0], "no commit was cut off"
        assert len(runs) == 2 and runs[1] != runs[0]  # again, on a new connection
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM probe")).scalar_one() == 1
    finally:
        engine.dispose()
