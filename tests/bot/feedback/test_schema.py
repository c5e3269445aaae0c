"""The feedback store's schema and migrations, SQLite settings, URLs and what it refuses."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, String, func, inspect, select

from bot.feedback import schema
from bot.feedback.schema import add_column, schema_version_table
from bot.feedback.store import FeedbackStore, normalize_url, open_store
from bot.settings import Settings
from tests.bot.conftest import POSTGRES_ENV, postgres_base_url
from tests.bot.feedback.conftest import SALT, record


def test_schema_version_and_a_forward_migration(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FeedbackStore(database_url, SALT) as store:
        sample_id = record(store, "3")
        with store.engine.connect() as connection:
            assert connection.execute(select(schema_version_table.c.version)).scalar_one() == 1

    def add_note(connection: Connection) -> None:
        add_column(connection, "samples", Column("note", String(200), nullable=True))

    monkeypatch.setattr(schema, "MIGRATIONS", [add_note])
    with FeedbackStore(database_url, SALT) as store:
        with store.engine.connect() as connection:
            assert connection.execute(select(schema_version_table.c.version)).scalar_one() == 2
            columns = {column["name"] for column in inspect(connection).get_columns("samples")}
        assert "note" in columns
        assert store.get(sample_id) is not None  # data kept across the migration
    # Reopening at the same version runs nothing again.
    FeedbackStore(database_url, SALT).close()

    monkeypatch.setattr(schema, "MIGRATIONS", [])
    with pytest.raises(ValueError, match="newer than this code"):
        FeedbackStore(database_url, SALT)


def test_several_replicas_can_create_the_schema_at_once(database_url: str) -> None:
    start = threading.Barrier(4)

    def open_and_write(replica: int) -> int:
        start.wait()
        with FeedbackStore(database_url, SALT) as store:
            return record(store, str(replica), seed=replica)

    with ThreadPoolExecutor(max_workers=4) as pool:
        sample_ids = list(pool.map(open_and_write, range(4)))
    assert len(set(sample_ids)) == 4
    with FeedbackStore(database_url, SALT) as store:
        assert store.stats().collected == 4
        with store.engine.connect() as connection:
            assert (
                connection.execute(
                    select(func.count()).select_from(schema_version_table)
                ).scalar_one()
                == 1
            )


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    with (
        FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}", SALT) as store,
        store.engine.connect() as connection,
    ):
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": schema.SQLITE_BUSY_TIMEOUT_MS,
        "synchronous": 2,  # FULL
    }


def test_default_database_url_creates_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import PROJECT_DIR

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # The default is the project folder's data/, wherever the command runs (not the current one).
    default = Settings(_env_file=None).database_url
    assert default == f"sqlite:///{PROJECT_DIR / 'data' / 'feedback.sqlite3'}"
    # A store whose folder does not exist yet creates it (here a private one, not the checkout's).
    folder = tmp_path / "new" / "data"
    settings = Settings(_env_file=None, database_url=f"sqlite:///{folder / 'feedback.sqlite3'}")
    with open_store(settings) as store:
        record(store, "1")
    assert (folder / "feedback.sqlite3").is_file()
    assert not (tmp_path / "data").exists()


def test_store_refuses_settings_it_cannot_honour(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="salt"):
        FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}", "")
    with pytest.raises(ValueError, match="memory"):
        FeedbackStore("sqlite:///:memory:", SALT)
    with pytest.raises(ValueError, match="DATABASE_URL"):
        FeedbackStore("mysql://user@localhost/db", SALT)
    with pytest.raises(ValueError, match="holdout_fraction"):
        FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}", SALT, holdout_fraction=1.0)


def test_normalize_url_picks_psycopg_for_postgresql() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///data/x.sqlite3").drivername == "sqlite"


def test_postgres_parameter_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(POSTGRES_ENV, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=POSTGRES_ENV):
        postgres_base_url()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=POSTGRES_ENV):
        postgres_base_url()
    monkeypatch.setenv(POSTGRES_ENV, "postgresql+psycopg://u:p@127.0.0.1/db")
    assert postgres_base_url() == "postgresql+psycopg://u:p@127.0.0.1/db"
