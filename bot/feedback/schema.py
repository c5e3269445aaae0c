"""The feedback store's database: its tables, their forward migrations, and the engine setup
(SQLite's pragmas and transaction modes, PostgreSQL's connection checks)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn

logger = logging.getLogger(__name__)

MAX_DIGITS = 12
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Marks a connection that only reads, so SQLite may open a deferred (shared) transaction for it.
READ_ONLY_OPTION = "digitbot_read_only"


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC on every database and handed back timezone-aware (UTC)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# BIGINT on PostgreSQL; SQLite only autoincrements a plain INTEGER primary key.
_Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

schema_version_table = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

samples_table = Table(
    "samples",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("chat_type", String(20), nullable=False),
    Column("chat_hash", String(64), nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("user_hash", String(64), nullable=False),
    Column("predicted", String(MAX_DIGITS), nullable=False),
    Column("digit_count", Integer, nullable=False),
    Column("confidence", Float, nullable=False),  # lowest per-digit confidence
    Column("confirmed", String(MAX_DIGITS), nullable=True),
    Column("correct", Boolean, nullable=True),
    Column("confirmer_hash", String(64), nullable=True),
    Column("confirmed_at", UtcDateTime, nullable=True),
    # sha256 over the confirmed number and the crop bytes: equal hashes are exact duplicates.
    Column("content_hash", String(64), nullable=True),
    Index("ix_samples_message", "chat_hash", "message_id"),
    Index("ix_samples_user", "user_hash"),
    Index("ix_samples_confirmer", "confirmer_hash", "confirmed_at"),
    Index("ix_samples_content", "content_hash"),
    # Never reuse the id of a deleted sample: an old button must not confirm a newer sample.
    sqlite_autoincrement=True,
)

sample_digits_table = Table(
    "sample_digits",
    metadata,
    Column(
        "sample_id",
        _Id,
        ForeignKey("samples.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("crop", LargeBinary, nullable=False),  # 784 bytes, row-major, uint8, ink = 255
    Column("predicted", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
)

Migration = Callable[[Connection], None]

# Forward migrations: MIGRATIONS[k] upgrades a database at schema version k + 1 to version k + 2.
# To add a column later: add it to the Table above (fresh databases get it from create_all) and
# append `lambda connection: add_column(connection, "samples", Column("note", String(200)))`.
MIGRATIONS: list[Migration] = []


def schema_version() -> int:
    """The schema version this code writes: 1 plus the number of forward migrations."""
    return 1 + len(MIGRATIONS)


def add_column(connection: Connection, table_name: str, column: Column[Any]) -> None:
    """Add `column` to an existing table; the connection's dialect compiles the column's DDL."""
    column_sql = CreateColumn(column).compile(dialect=connection.dialect)
    table_sql = connection.dialect.identifier_preparer.quote(table_name)
    connection.exec_driver_sql(f"ALTER TABLE {table_sql} ADD COLUMN {column_sql}")


def configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout and durable commits on every new SQLite connection."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # FULL: a commit is on disk when it returns, even across a power cut.
            cursor.execute("PRAGMA synchronous = FULL")
            # /forget must not leave deleted crops readable in free pages of the file.
            cursor.execute("PRAGMA secure_delete = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front; a deferred transaction that reads and then writes
        # fails at once (SQLITE_BUSY, no waiting) when another writer committed in between.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_database_engine(url: URL) -> Engine:
    """The engine for `url`: an SQLite file (made with its folder) or a PostgreSQL server."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            # Each pooled connection would get its own empty in-memory database.
            raise ValueError("the feedback store needs an SQLite file, not :memory:")
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        configure_sqlite(engine)
        return engine
    # pre_ping: a replica survives a database restart without failing its next write.
    return create_engine(url, pool_pre_ping=True)


def create_or_migrate(engine: Engine, now: Callable[[], datetime]) -> None:
    """Create missing tables, then bring an older schema forward one migration at a time."""
    target = schema_version()
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                metadata.create_all(connection)
                stored = connection.execute(
                    select(schema_version_table.c.version)
                    .where(schema_version_table.c.id == 1)
                    .with_for_update()
                ).scalar_one_or_none()
                if stored is None:
                    # A new database: create_all just built the newest schema.
                    connection.execute(
                        insert(schema_version_table).values(id=1, version=target, updated_at=now())
                    )
                    return
                if stored > target:
                    raise ValueError(
                        f"the feedback database has schema version {stored}, newer than this "
                        f"code's {target}; upgrade digitbot"
                    )
                for version in range(stored, target):
                    logger.info("migrating the feedback store from version %d", version)
                    MIGRATIONS[version - 1](connection)
                if stored != target:
                    connection.execute(
                        update(schema_version_table)
                        .where(schema_version_table.c.id == 1)
                        .values(version=target, updated_at=now())
                    )
            return
        except DBAPIError:
            # Two replicas starting together on PostgreSQL can race on CREATE TABLE; the
            # loser's retry finds the tables there.
            if attempt == attempts:
                raise
            logger.warning("creating the feedback schema failed; retrying", exc_info=True)


def checkpoint_sqlite(engine: Engine) -> None:
    """Copy SQLite's WAL into the file and truncate it, so that deleted crops do not stay in the
    WAL's older page images (the file's own pages are zeroed by secure_delete)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy, _, _ = cursor.fetchone() or (0, 0, 0)  # PRAGMA answers one row
        if busy:
            logger.warning(
                "a reader kept SQLite's WAL busy after /forget: the deleted crops stay in "
                "it until the next checkpoint"
            )
    finally:
        raw.close()
