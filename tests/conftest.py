"""Shared fixtures: per-test isolated storage on SQLite and on PostgreSQL.

``storage_url`` is parametrized over ``sqlite`` and ``postgres``, so a test that takes it
(directly or through ``store``) runs once per back end:

- ``sqlite``: a fresh database file in the test's ``tmp_path``;
- ``postgres``: a fresh schema ``hps_<hex>`` in the database named by the environment
  variable ``HPSEARCH_TEST_POSTGRES_URL`` (e.g.
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), selected with
  ``?options=-csearch_path=<schema>`` so that every table, Alembic's ``alembic_version``
  included, lives in it; the schema is dropped after the test.  Without the variable the
  test is skipped with the reason "HPSEARCH_TEST_POSTGRES_URL is not set".  These cases
  carry the ``postgres`` marker (``-m "not postgres"`` leaves them out).

``store`` is an open :class:`hpsearch.store.Store` on ``storage_url`` (closed after the
test).  ``chief`` is an in-process chief on a free port over ``chief_storage`` (which is
``storage_url``; a test package may override it), ``client`` a Client connected to it.
``sqlite_url`` and ``postgres_url`` give one back end only (``module_postgres_url``: one
schema for a whole module); a test that uses either gets the ``postgres`` marker even if it
does not say so.

Under ``CI=true`` (``.ci/run`` sets it) a skipped test fails instead: CI installs every
service and tool the suite needs (PostgreSQL, Chromium, TensorFlow, kubectl, hadolint...),
so a skip there means one of them went missing.  A test that may rightly skip in CI says
so with ``@pytest.mark.ci_may_skip("why")``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hpsearch.store import Store

POSTGRES_ENV = "HPSEARCH_TEST_POSTGRES_URL"
POSTGRES_FIXTURES = {"postgres_url", "module_postgres_url"}


def in_ci() -> bool:
    """Whether the suite runs under CI (``CI=true``, as .ci/run and most CI services set)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses PostgreSQL ``postgres``, whether or not it says so."""
    for item in items:
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a skip is a failure that names the missing service or tool."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    if item.get_closest_marker("ci_may_skip") is not None:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true: {reason}\n"
        "CI must run every test: install what the reason names (.ci/run sets up PostgreSQL "
        "and Chromium and installs '.[all]'), or mark the test "
        '@pytest.mark.ci_may_skip("why") if it may rightly skip there'
    )


def _postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database file (not yet created) in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'hpsearch.db'}"


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A URL whose connections use a new, empty PostgreSQL schema; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from hpsearch.store import normalize_url

    base = normalize_url(_postgres_base_url())
    schema = f"hps_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # a configured but unreachable server is a failure, not a skip
        admin.dispose()
        pytest.fail(f"cannot create a schema on {POSTGRES_ENV}={base!s}: {exc}")
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            # A connection left inside a transaction would block the drop: fail, not hang.
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a new, empty PostgreSQL schema; dropped afterwards."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url() -> Iterator[str]:
    """Like ``postgres_url``, shared by the tests of one module (module-scoped fixtures)."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def storage_url(request: pytest.FixtureRequest) -> str:
    """An isolated, empty database URL, once per back end (see the module docstring)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(storage_url: str) -> Iterator[Store]:
    """An open :class:`hpsearch.store.Store` on ``storage_url``, closed after the test."""
    opened = Store(storage_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def chief_storage(storage_url: str) -> str:
    """The chief's database: the shared per-test storage (override to narrow it)."""
    return storage_url


@pytest.fixture
def chief(chief_storage: str) -> Iterator[object]:
    """An in-process chief on a free port with a short hold and a fast lease sweeper."""
    from hpsearch.chief import Chief

    server = Chief(chief_storage, host="127.0.0.1", port=0, hold_seconds=1.0, sweep_seconds=0.2)
    server.start()
    try:
        yield server
    finally:
        server.stop(0)


@pytest.fixture
def client(chief: Any) -> Iterator[object]:
    """A Client of ``chief`` with short deadlines."""
    from hpsearch.client import Client

    with Client(chief.address, timeout=5.0, wait_seconds=1.0, retry_seconds=10.0) as c:
        yield c
