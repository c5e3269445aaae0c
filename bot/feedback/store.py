"""The durable feedback store: what users confirmed about the bot's answers, kept for `/retrain`.

One `FeedbackStore` per process, on SQLAlchemy 2 Core, so the same code runs on the embedded
SQLite file (default) and on PostgreSQL (`postgresql+psycopg://`) when several bot replicas share
one store. Every method is synchronous and thread-safe; the bot calls them via `asyncio.to_thread`,
and its answers' writes through `bot/feedback/groupcommit.py`.

What is kept per served answer (a "sample"): the preprocessed 28x28 crops as uint8 bytes (never
the photo), the predicted number and per-digit confidences, the model version, the chat type,
salted HMAC-SHA256 hashes of the user id and chat id (raw ids are never stored), the bot's message
id (to find the sample when a button is pressed), and, once someone confirms it, the confirmed
number, whether the prediction was right, the confirmer's hash and the time. Every write is one
transaction; `recording`/`linking` + `transact` put several into one (the bot's group commit).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import io
import itertools
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
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
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn

if TYPE_CHECKING:
    from bot.settings import Settings

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
# One write, checked and ready: FeedbackStore.transact calls it inside its transaction.
Write: TypeAlias = Callable[[Connection], Result]

IMAGE_SIDE = 28
CROP_BYTES = IMAGE_SIDE * IMAGE_SIDE
MAX_DIGITS = 12
CHAT_TYPES = ("private", "group", "supergroup")
DEFAULT_MAX_CONFIRMATIONS_PER_DAY = 100
DEFAULT_MAX_CONFIRMATIONS_TOTAL = 2000
DEFAULT_HOLDOUT_FRACTION = 0.2
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Marks a connection that only reads, so SQLite may open a deferred (shared) transaction for it.
_READ_ONLY_OPTION = "digitbot_read_only"


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


class ConfirmStatus(enum.StrEnum):
    """What `FeedbackStore.confirm` did."""

    CONFIRMED = "confirmed"  # this call's confirmation was stored
    ALREADY_CONFIRMED = "already_confirmed"  # someone confirmed first; `confirmed` is their value
    CAPPED = "capped"  # the confirming user reached a daily or total cap; nothing stored
    NOT_FOUND = "not_found"  # no such sample (never recorded, or deleted by /forget)


@dataclass(frozen=True)
class Confirmation:
    """The outcome of one confirm call."""

    status: ConfirmStatus
    sample_id: int | None
    predicted: str | None
    confirmed: str | None  # the stored confirmed number (the earlier one if ALREADY_CONFIRMED)
    correct: bool | None


@dataclass(frozen=True)
class Sample:
    """A stored sample as the bot needs it when a button is pressed."""

    sample_id: int
    predicted: str
    confidences: list[float]
    model_version: str
    chat_type: str
    confirmed: str | None
    correct: bool | None
    created_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True)
class UserSamples:
    """Confirmed digits for training or evaluation, in MNIST's format."""

    x: npt.NDArray[np.uint8]  # (n, 28, 28), ink = 255
    y: npt.NDArray[np.uint8]  # (n,)
    counts: npt.NDArray[np.int64]  # (n,) confirmations merged into each row (exact duplicates)
    corrected: npt.NDArray[np.bool_]  # (n,) the bot had read this digit wrong (a user corrected it)


@dataclass(frozen=True)
class FeedbackStats:
    """The figures `/stats` and `digitbot feedback stats` show."""

    collected: int  # answers recorded
    confirmed: int
    confirmed_right: int
    confirmed_wrong: int
    live_accuracy: float | None  # confirmed_right / confirmed (0-1); None before any confirmation
    confusion: list[list[int]]  # 10x10, rows = confirmed digit, columns = predicted digit


@dataclass(frozen=True)
class ExportCounts:
    """How many digits `export_npz` wrote to each part."""

    train: int
    test: int


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; bare `postgresql://` and `postgres://` mean psycopg 3 here."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            "DATABASE_URL must be sqlite:///PATH or postgresql+psycopg://..., "
            f"got {parsed.drivername}"
        )
    return parsed


def _crop_bytes(crop: npt.ArrayLike) -> bytes:
    """One 28x28 crop as 784 uint8 bytes (ink = 255); floats are read as [0, 1] intensities."""
    array = np.asarray(crop)
    if array.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"each crop must be 28x28, got shape {array.shape}")
    if array.dtype == np.uint8:
        return bytes(np.ascontiguousarray(array).tobytes())
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"crops must be uint8 or float in [0, 1], got dtype {array.dtype}")
    if not np.isfinite(array).all() or array.min() < -1e-6 or array.max() > 1 + 1e-6:
        raise ValueError("float crops must hold finite values in [0, 1]")
    return bytes(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8).tobytes())


def _check_number(number: str, what: str) -> str:
    if not (1 <= len(number) <= MAX_DIGITS) or not all(char in "0123456789" for char in number):
        raise ValueError(f"{what} must be 1 to {MAX_DIGITS} digits 0-9, got {number!r}")
    return number


def _content_hash(confirmed: str, crops: Sequence[bytes]) -> str:
    digest = hashlib.sha256(confirmed.encode("ascii") + b"|")
    for crop in crops:
        digest.update(crop)
    return digest.hexdigest()


def _in_holdout(crops: Sequence[bytes], fraction: float) -> bool:
    """Deterministic split on the crop bytes alone, so a duplicate never straddles both parts."""
    digest = hashlib.sha256(b"".join(crops)).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def _empty_samples() -> UserSamples:
    return UserSamples(
        x=np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8),
        y=np.zeros((0,), dtype=np.uint8),
        counts=np.zeros((0,), dtype=np.int64),
        corrected=np.zeros((0,), dtype=np.bool_),
    )


def _configure_sqlite(engine: Engine) -> None:
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
        if connection.get_execution_options().get(_READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class FeedbackStore:
    """Samples, confirmations, caps, training data and figures in one SQL database."""

    def __init__(
        self,
        url: str | URL,
        salt: str,
        *,
        earlier_salts: Sequence[str] = (),
        max_confirmations_per_day: int = DEFAULT_MAX_CONFIRMATIONS_PER_DAY,
        max_confirmations_total: int = DEFAULT_MAX_CONFIRMATIONS_TOTAL,
        holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not salt:
            raise ValueError("the feedback salt must not be empty (set FEEDBACK_SALT)")
        if max_confirmations_per_day < 1 or max_confirmations_total < 1:
            raise ValueError("confirmation caps must be at least 1")
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        self._salt = salt.encode("utf-8")
        self._earlier_salts = [earlier.encode("utf-8") for earlier in earlier_salts if earlier]
        self.max_confirmations_per_day = max_confirmations_per_day
        self.max_confirmations_total = max_confirmations_total
        self.holdout_fraction = holdout_fraction
        self._clock = clock
        self.url = normalize_url(url)
        self.engine = self._create_engine(self.url)
        try:
            self._create_or_migrate()
        except BaseException:
            self.engine.dispose()
            raise

    # -- setup -------------------------------------------------------------------------------

    @staticmethod
    def _create_engine(url: URL) -> Engine:
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:") or database.startswith("file::memory:"):
                # Each pooled connection would get its own empty in-memory database.
                raise ValueError("the feedback store needs an SQLite file, not :memory:")
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
            return engine
        # pre_ping: a replica survives a database restart without failing its next write.
        return create_engine(url, pool_pre_ping=True)

    def _create_or_migrate(self) -> None:
        """Create missing tables, then bring an older schema forward one migration at a time."""
        target = schema_version()
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                with self.engine.begin() as connection:
                    metadata.create_all(connection)
                    stored = connection.execute(
                        select(schema_version_table.c.version)
                        .where(schema_version_table.c.id == 1)
                        .with_for_update()
                    ).scalar_one_or_none()
                    if stored is None:
                        # A new database: create_all just built the newest schema.
                        connection.execute(
                            insert(schema_version_table).values(
                                id=1, version=target, updated_at=self._clock()
                            )
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
                            .values(version=target, updated_at=self._clock())
                        )
                return
            except DBAPIError:
                # Two replicas starting together on PostgreSQL can race on CREATE TABLE; the
                # loser's retry finds the tables there.
                if attempt == attempts:
                    raise
                logger.warning("creating the feedback schema failed; retrying", exc_info=True)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot for several queries."""
        with self.engine.connect() as connection:
            if self.url.get_backend_name() == "postgresql":
                connection.execution_options(isolation_level="REPEATABLE READ")
            else:
                connection.execution_options(**{_READ_ONLY_OPTION: True})
            with connection.begin():
                yield connection

    # -- hashing -----------------------------------------------------------------------------

    def hash_id(self, kind: str, telegram_id: int, salt: bytes | None = None) -> str:
        """HMAC-SHA256 (hex) of a Telegram id with the salt; `kind` keeps user and chat apart."""
        message = f"{kind}:{int(telegram_id)}".encode("ascii")
        return hmac.new(salt or self._salt, message, hashlib.sha256).hexdigest()

    def user_hash(self, user_id: int) -> str:
        """The stored stand-in for a user id."""
        return self.hash_id("user", user_id)

    def chat_hash(self, chat_id: int) -> str:
        """The stored stand-in for a chat id."""
        return self.hash_id("chat", chat_id)

    # -- writes ------------------------------------------------------------------------------

    def record(self, **answer: Any) -> int:
        """Store one served answer (its fields: see `recording`) and return its sample id."""
        return self.transact([self.recording(**answer)])[0]

    def recording(
        self,
        *,
        crops: Sequence[npt.ArrayLike] | npt.NDArray[Any],
        predicted: str,
        confidences: Sequence[float],
        model_version: str,
        chat_type: str,
        chat_id: int,
        user_id: int,
        message_id: int | None = None,
    ) -> Write[int]:
        """One served answer (one crop per digit, left to right) as a write for `transact`;
        the arguments are checked now (ValueError)."""
        _check_number(predicted, "predicted")
        crop_bytes = [_crop_bytes(crop) for crop in crops]
        if len(crop_bytes) != len(predicted) or len(confidences) != len(predicted):
            raise ValueError(
                f"predicted {predicted!r} needs one crop and one confidence per digit, got "
                f"{len(crop_bytes)} crops and {len(confidences)} confidences"
            )
        confidence_values = [float(value) for value in confidences]
        if not all(0.0 <= value <= 1.0 for value in confidence_values):
            raise ValueError(f"confidences must lie in [0, 1], got {confidence_values}")
        if chat_type not in CHAT_TYPES:
            raise ValueError(f"chat_type must be one of {CHAT_TYPES}, got {chat_type!r}")
        if not model_version or len(model_version) > 100:
            raise ValueError("model_version must be 1 to 100 characters")
        sample = {
            "model_version": model_version,
            "chat_type": chat_type,
            "chat_hash": self.chat_hash(chat_id),
            "message_id": message_id,
            "user_hash": self.user_hash(user_id),
            "predicted": predicted,
            "digit_count": len(predicted),
            "confidence": min(confidence_values),
        }
        digits = [
            {"position": position, "crop": crop, "predicted": int(digit), "confidence": confidence}
            for position, (crop, digit, confidence) in enumerate(
                zip(crop_bytes, predicted, confidence_values, strict=True)
            )
        ]

        def write(connection: Connection) -> int:
            sample_id = connection.execute(
                insert(samples_table)
                .values(created_at=self._clock(), **sample)
                .returning(samples_table.c.id)
            ).scalar_one()
            connection.execute(
                insert(sample_digits_table), [{"sample_id": sample_id, **digit} for digit in digits]
            )
            return int(sample_id)

        return write

    def link_message(self, sample_id: int, message_id: int) -> bool:
        """Attach the bot's answer message id to a sample recorded before the answer was sent."""
        return self.transact([self.linking(sample_id, message_id)])[0]

    def linking(self, sample_id: int, message_id: int) -> Write[bool]:
        """`link_message` as a write for `transact`."""

        def write(connection: Connection) -> bool:
            result = connection.execute(
                update(samples_table)
                .where(samples_table.c.id == sample_id)
                .values(message_id=message_id)
            )
            return result.rowcount == 1

        return write

    def transact(self, writes: Sequence[Write[Any]]) -> list[Any]:
        """Run `writes` in one transaction (one commit, one sync to disk); results in order."""
        with self.engine.begin() as connection:
            return [write(connection) for write in writes]

    def confirm(
        self,
        *,
        user_id: int,
        confirmed: str | None = None,
        sample_id: int | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Confirmation:
        """Store what the sample really shows; `confirmed=None` means "the prediction was right".

        Name the sample by `sample_id`, or by `chat_id` + `message_id` of the bot's answer. The
        first confirmation wins; later calls get ALREADY_CONFIRMED with the stored value. A user
        past a cap gets CAPPED and nothing is stored.
        """
        if confirmed is not None:
            _check_number(confirmed, "confirmed")
        by_message = chat_id is not None and message_id is not None
        if (sample_id is None) != by_message:
            raise ValueError("name the sample by sample_id or by chat_id and message_id (one way)")
        confirmer_hash = self.user_hash(user_id)
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # One confirmation per confirmer at a time, across replicas, until commit: the
                # caps are counted and then written, which READ COMMITTED alone lets two
                # simultaneous confirmations both pass (SQLite's BEGIN IMMEDIATE serialises).
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": int(confirmer_hash[:15], 16)},
                )
            if chat_id is not None and message_id is not None:
                # A bot message id can repeat after an emulator restart; the newest sample wins.
                sample_id = connection.execute(
                    select(func.max(samples_table.c.id)).where(
                        samples_table.c.chat_hash == self.chat_hash(chat_id),
                        samples_table.c.message_id == message_id,
                    )
                ).scalar_one_or_none()
                if sample_id is None:
                    return Confirmation(ConfirmStatus.NOT_FOUND, None, None, None, None)
            row = connection.execute(
                select(
                    samples_table.c.predicted,
                    samples_table.c.confirmed,
                    samples_table.c.correct,
                ).where(samples_table.c.id == sample_id)
            ).one_or_none()
            if row is None:
                return Confirmation(ConfirmStatus.NOT_FOUND, sample_id, None, None, None)
            if row.confirmed is not None:
                return Confirmation(
                    ConfirmStatus.ALREADY_CONFIRMED,
                    sample_id,
                    row.predicted,
                    row.confirmed,
                    row.correct,
                )
            now = self._clock()
            if self._over_cap(connection, confirmer_hash, now):
                return Confirmation(ConfirmStatus.CAPPED, sample_id, row.predicted, None, None)
            number = row.predicted if confirmed is None else confirmed
            crops = connection.execute(
                select(sample_digits_table.c.crop)
                .where(sample_digits_table.c.sample_id == sample_id)
                .order_by(sample_digits_table.c.position)
            ).scalars()
            correct = number == row.predicted
            # "confirmed IS NULL" again: on PostgreSQL a concurrent confirmer may have won between
            # the read above and this row lock; then this update matches nothing.
            result = connection.execute(
                update(samples_table)
                .where(samples_table.c.id == sample_id, samples_table.c.confirmed.is_(None))
                .values(
                    confirmed=number,
                    correct=correct,
                    confirmer_hash=confirmer_hash,
                    confirmed_at=now,
                    content_hash=_content_hash(number, [bytes(crop) for crop in crops]),
                )
            )
            if result.rowcount == 1:
                return Confirmation(
                    ConfirmStatus.CONFIRMED, sample_id, row.predicted, number, correct
                )
            winner = connection.execute(
                select(samples_table.c.confirmed, samples_table.c.correct).where(
                    samples_table.c.id == sample_id
                )
            ).one_or_none()
        if winner is None or winner.confirmed is None:
            return Confirmation(ConfirmStatus.NOT_FOUND, sample_id, None, None, None)
        return Confirmation(
            ConfirmStatus.ALREADY_CONFIRMED,
            sample_id,
            row.predicted,
            winner.confirmed,
            winner.correct,
        )

    def _over_cap(self, connection: Connection, confirmer_hash: str, now: datetime) -> bool:
        by_user = samples_table.c.confirmer_hash == confirmer_hash
        total = connection.execute(
            select(func.count()).select_from(samples_table).where(by_user)
        ).scalar_one()
        if total >= self.max_confirmations_total:
            return True
        today = connection.execute(
            select(func.count())
            .select_from(samples_table)
            .where(by_user, samples_table.c.confirmed_at > now - timedelta(days=1))
        ).scalar_one()
        return bool(today >= self.max_confirmations_per_day)

    def forget(self, user_id: int) -> int:
        """Delete every sample the user sent and withdraw every confirmation they gave.

        Returns how many samples were deleted or un-confirmed. Samples the user confirmed for
        others become unconfirmed (the photo was the other person's; the label was this user's).
        """
        # Under the current salt and every earlier one (bot/feedback/salts.py).
        hashes = [
            self.hash_id("user", user_id, salt) for salt in [self._salt, *self._earlier_salts]
        ]
        with self.engine.begin() as connection:
            deleted = connection.execute(
                delete(samples_table).where(samples_table.c.user_hash.in_(hashes))
            ).rowcount
            withdrawn = connection.execute(
                update(samples_table)
                .where(samples_table.c.confirmer_hash.in_(hashes))
                .values(
                    confirmed=None,
                    correct=None,
                    confirmer_hash=None,
                    confirmed_at=None,
                    content_hash=None,
                )
            ).rowcount
        self._checkpoint()
        return int(deleted) + int(withdrawn)

    def _checkpoint(self) -> None:
        """SQLite: copy the WAL into the file and truncate it, so that deleted crops do not stay
        in the WAL's older page images (the file's own pages are zeroed by secure_delete)."""
        if self.url.get_backend_name() != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _, _ = cursor.fetchone()
            if busy:
                logger.warning(
                    "a reader kept SQLite's WAL busy after /forget: the deleted crops stay in "
                    "it until the next checkpoint"
                )
        finally:
            raw.close()

    # -- reads -------------------------------------------------------------------------------

    def get(self, sample_id: int) -> Sample | None:
        """One sample by id, or None."""
        return self._find(samples_table.c.id == sample_id)

    def find(self, chat_id: int, message_id: int) -> Sample | None:
        """The sample behind the bot's answer message, or None."""
        return self._find(
            samples_table.c.chat_hash == self.chat_hash(chat_id),
            samples_table.c.message_id == message_id,
        )

    def _find(self, *conditions: Any) -> Sample | None:
        with self._reading() as connection:
            row = connection.execute(
                select(samples_table)
                .where(*conditions)
                .order_by(samples_table.c.id.desc())
                .limit(1)
            ).one_or_none()
            if row is None:
                return None
            confidences = connection.execute(
                select(sample_digits_table.c.confidence)
                .where(sample_digits_table.c.sample_id == row.id)
                .order_by(sample_digits_table.c.position)
            ).scalars()
            return Sample(
                sample_id=int(row.id),
                predicted=row.predicted,
                confidences=[float(value) for value in confidences],
                model_version=row.model_version,
                chat_type=row.chat_type,
                confirmed=row.confirmed,
                correct=row.correct,
                created_at=row.created_at,
                confirmed_at=row.confirmed_at,
            )

    def _confirmed_digits(self) -> tuple[UserSamples, UserSamples]:
        """(train, holdout): one row per digit of each distinct confirmed content.

        Only numbers whose confirmed length equals the number of crops can be split into digits.
        """
        with self._reading() as connection:
            rows = connection.execute(
                select(
                    samples_table.c.id,
                    samples_table.c.predicted,
                    samples_table.c.confirmed,
                    samples_table.c.content_hash,
                    sample_digits_table.c.crop,
                )
                .join(sample_digits_table, sample_digits_table.c.sample_id == samples_table.c.id)
                .where(
                    samples_table.c.confirmed.is_not(None),
                    func.length(samples_table.c.confirmed) == samples_table.c.digit_count,
                )
                .order_by(samples_table.c.id, sample_digits_table.c.position)
            ).all()
        # Group the digit rows back into samples, then merge samples with equal content hashes.
        merged: dict[str, tuple[str, str, list[bytes]]] = {}
        counts: dict[str, int] = {}
        for _, group in itertools.groupby(rows, key=lambda row: row.id):
            sample_rows = list(group)
            key = sample_rows[0].content_hash
            if key in merged:
                counts[key] += 1
            else:
                first = sample_rows[0]
                merged[key] = (
                    first.predicted,
                    first.confirmed,
                    [bytes(r.crop) for r in sample_rows],
                )
                counts[key] = 1

        parts: dict[bool, tuple[list[bytes], list[int], list[int], list[bool]]] = {
            False: ([], [], [], []),
            True: ([], [], [], []),
        }
        for key, (predicted, label, crops) in merged.items():
            images, labels, row_counts, corrected = parts[_in_holdout(crops, self.holdout_fraction)]
            # A number read with the wrong length has no digit-by-digit answer: all corrected.
            read = predicted if len(predicted) == len(label) else "?" * len(label)
            for crop, digit, read_digit in zip(crops, label, read, strict=True):
                images.append(crop)
                labels.append(int(digit))
                row_counts.append(counts[key])
                corrected.append(read_digit != digit)
        return self._as_arrays(*parts[False]), self._as_arrays(*parts[True])

    @staticmethod
    def _as_arrays(
        images: list[bytes], labels: list[int], counts: list[int], corrected: list[bool]
    ) -> UserSamples:
        if not images:
            return _empty_samples()
        x = np.frombuffer(b"".join(images), dtype=np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
        return UserSamples(
            x=x.copy(),
            y=np.asarray(labels, dtype=np.uint8),
            counts=np.asarray(counts, dtype=np.int64),
            corrected=np.asarray(corrected, dtype=np.bool_),
        )

    def training_samples(self, include_holdout: bool = False) -> UserSamples:
        """Confirmed digits to mix into training; without the held-out slice unless asked."""
        train, holdout = self._confirmed_digits()
        if not include_holdout or len(holdout.y) == 0:
            return train
        return UserSamples(
            x=np.concatenate([train.x, holdout.x]),
            y=np.concatenate([train.y, holdout.y]),
            counts=np.concatenate([train.counts, holdout.counts]),
            corrected=np.concatenate([train.corrected, holdout.corrected]),
        )

    def holdout_samples(self) -> UserSamples:
        """The held-out slice of confirmed digits: the "accuracy on users' photos" test set."""
        return self._confirmed_digits()[1]

    def stats(self, model_version: str | None = None) -> FeedbackStats:
        """Collected/confirmed counts, live accuracy, per-digit confusion (one model or all)."""
        conditions = []
        if model_version is not None:
            conditions.append(samples_table.c.model_version == model_version)
        with self._reading() as connection:
            collected = connection.execute(
                select(func.count()).select_from(samples_table).where(*conditions)
            ).scalar_one()
            pairs = connection.execute(
                select(samples_table.c.predicted, samples_table.c.confirmed).where(
                    samples_table.c.confirmed.is_not(None), *conditions
                )
            ).all()
        confusion = [[0] * 10 for _ in range(10)]
        right = 0
        for predicted, confirmed in pairs:
            right += predicted == confirmed
            if len(predicted) == len(confirmed):
                for predicted_digit, confirmed_digit in zip(predicted, confirmed, strict=True):
                    confusion[int(confirmed_digit)][int(predicted_digit)] += 1
        return FeedbackStats(
            collected=int(collected),
            confirmed=len(pairs),
            confirmed_right=right,
            confirmed_wrong=len(pairs) - right,
            live_accuracy=right / len(pairs) if pairs else None,
            confusion=confusion,
        )

    def export_npz(self, path: str | Path) -> ExportCounts:
        """Write confirmed digits as an MNIST-format `.npz` (held-out slice = test), atomically."""
        train, holdout = self._confirmed_digits()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, x_train=train.x, y_train=train.y, x_test=holdout.x, y_test=holdout.y
        )
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return ExportCounts(train=len(train.y), test=len(holdout.y))


def open_store(settings: Settings) -> FeedbackStore:
    """The store named by DATABASE_URL, salted with FEEDBACK_SALT or the generated salt."""
    from bot.feedback.salts import load_salts

    salts = load_salts(settings)
    return FeedbackStore(
        settings.database_url,
        salts.current,
        earlier_salts=salts.earlier,
        max_confirmations_per_day=settings.feedback_max_per_day,
        max_confirmations_total=settings.feedback_max_total,
        holdout_fraction=settings.feedback_holdout_fraction,
    )
