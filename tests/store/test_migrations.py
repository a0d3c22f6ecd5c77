"""Schema migrations and opening databases: what a Store does with what it finds."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from hpsearch.errors import StorageError
from hpsearch.store import (
    Store,
    current_revision,
    downgrade,
    head_revision,
    normalize_url,
    upgrade,
)
from hpsearch.store.migrate import HEAD_REVISION
from hpsearch.store.models import Base

from .helpers import study_config


def test_new_database_is_upgraded_when_a_store_opens_it(storage_url: str) -> None:
    assert current_revision(storage_url) is None
    with Store(storage_url) as store:
        store.create_study(study_config("kept"))
    assert current_revision(storage_url) == head_revision()
    with Store(storage_url) as store:
        assert store.get_study("kept").name == "kept"


def test_upgrade_is_idempotent(storage_url: str) -> None:
    assert upgrade(storage_url) == (None, head_revision())
    assert upgrade(storage_url) == (head_revision(), head_revision())
    with Store(storage_url, upgrade=False) as store:
        assert store.list_studies() == []


def test_the_head_constant_matches_the_scripts() -> None:
    assert head_revision() == HEAD_REVISION


def test_models_match_the_migrations(storage_url: str) -> None:
    """The typed models and the newest revision describe the same schema."""
    upgrade(storage_url)
    engine = create_engine(normalize_url(storage_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgraded_database(storage_url: str) -> None:
    """Downgraded to base the database is empty again: a Store re-creates the schema
    (upgrade=True), or says to run `hpsearch db upgrade` (upgrade=False)."""
    with Store(storage_url) as store:
        store.create_study(study_config())
    assert downgrade(storage_url, "base") == (head_revision(), None)
    assert current_revision(storage_url) is None
    with pytest.raises(StorageError, match="hpsearch db upgrade --storage"):
        Store(storage_url, upgrade=False)
    with Store(storage_url) as store:
        assert store.list_studies() == []
    assert current_revision(storage_url) == head_revision()


def test_database_at_an_unknown_revision_is_refused(storage_url: str) -> None:
    upgrade(storage_url)
    engine = create_engine(normalize_url(storage_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(StorageError, match="revision 9999, which this version of hpsearch"):
        Store(storage_url)


def test_database_at_an_older_revision_is_refused(storage_url: str) -> None:
    """A known revision that is not the head: the message says to run `hpsearch db upgrade`."""
    upgrade(storage_url, "0001")
    with pytest.raises(StorageError, match=r"0001, older than .* run `hpsearch db upgrade"):
        Store(storage_url)


def test_database_at_0001_upgrades_with_its_data(storage_url: str) -> None:
    """0001 -> 0002 adds the chief lease table and keeps the studies."""
    upgrade(storage_url, "0001")
    engine = create_engine(normalize_url(storage_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO studies (name, config, state, goal, lease_seconds, max_attempts,"
                    " trial_count, created_at, updated_at) VALUES ('old', '{}', 'ACTIVE',"
                    " 'MAXIMIZE', 60, 3, 0, 0, 0)"
                )
            )
    finally:
        engine.dispose()
    assert upgrade(storage_url) == ("0001", head_revision())
    with Store(storage_url) as store:
        assert store.chief_lease() is None
        lease = store.acquire_chief_lease("chief-a", 30)
        assert lease.epoch == 1
    engine = create_engine(normalize_url(storage_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM studies")).scalars().all() == ["old"]
    finally:
        engine.dispose()


def test_foreign_tables_are_not_taken_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE studies (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(StorageError, match="not created by hpsearch"):
        Store(url)


def test_sqlite_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "studies.db"
    with Store(f"sqlite:///{path}") as store:
        assert store.list_studies() == []
    assert path.exists()


def test_sqlite_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="choose a writable path"):
        Store(f"sqlite:///{blocker}/sub/studies.db")


def test_unreachable_postgres_says_what_to_check() -> None:
    with pytest.raises(StorageError, match="is PostgreSQL running") as err:
        Store("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(err.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///rel/x.db", "sqlite:///rel/x.db"),
    ],
)
def test_urls_are_normalized(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "nonsense"])
def test_unsupported_urls_are_refused(bad: str) -> None:
    with pytest.raises(StorageError, match=r"sqlite|psycopg"):
        Store(bad)


def test_sqlite_path_with_a_tilde_is_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with Store("sqlite:///~/studies/hp.db") as store:
        store.create_study(study_config())
    assert (tmp_path / "studies" / "hp.db").exists()
