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
The tables and engine setup are in bot/feedback/schema.py, the records handed out and the pure
conversions in bot/feedback/samples.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import numpy.typing as npt
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import URL, Connection, make_url

from bot.feedback.samples import (
    CHAT_TYPES,
    Confirmation,
    ConfirmStatus,
    ExportCounts,
    FeedbackStats,
    Sample,
    UserSamples,
    check_number,
    content_hash,
    crop_to_bytes,
    feedback_stats,
    joined,
    split_confirmed,
    write_npz,
)
from bot.feedback.schema import (
    READ_ONLY_OPTION,
    checkpoint_sqlite,
    create_database_engine,
    create_or_migrate,
    sample_digits_table,
    samples_table,
)
from bot.settings import Settings

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
# One write, checked and ready: FeedbackStore.transact calls it inside its transaction.
Write: TypeAlias = Callable[[Connection], Result]

# The caps and the held-out share default to the settings' defaults (FEEDBACK_MAX_PER_DAY, ...).
_SETTINGS = Settings.model_fields
DEFAULT_MAX_CONFIRMATIONS_PER_DAY: int = _SETTINGS["feedback_max_per_day"].default
DEFAULT_MAX_CONFIRMATIONS_TOTAL: int = _SETTINGS["feedback_max_total"].default
DEFAULT_HOLDOUT_FRACTION: float = _SETTINGS["feedback_holdout_fraction"].default


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
        self.engine = create_database_engine(self.url)
        try:
            create_or_migrate(self.engine, self._clock)
        except BaseException:
            self.engine.dispose()
            raise

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
                connection.execution_options(**{READ_ONLY_OPTION: True})
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
        check_number(predicted, "predicted")
        crop_bytes = [crop_to_bytes(crop) for crop in crops]
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

    def linking(self, sample_id: int, message_id: int) -> Write[bool]:
        """Attach the bot's answer message id to a sample recorded before the answer was sent
        (a write for `transact`; its result says whether the sample was there)."""

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
            check_number(confirmed, "confirmed")
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
                    content_hash=content_hash(number, [bytes(crop) for crop in crops]),
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
        if self.url.get_backend_name() == "sqlite":
            checkpoint_sqlite(self.engine)
        return int(deleted) + int(withdrawn)

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
        return split_confirmed(rows, self.holdout_fraction)

    def training_samples(self, include_holdout: bool = False) -> UserSamples:
        """Confirmed digits to mix into training; without the held-out slice unless asked."""
        train, holdout = self._confirmed_digits()
        return joined(train, holdout) if include_holdout else train

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
        return feedback_stats(collected, pairs)

    def export_npz(self, path: str | Path) -> ExportCounts:
        """Write confirmed digits as an MNIST-format `.npz` (held-out slice = test), atomically."""
        train, holdout = self._confirmed_digits()
        return write_npz(Path(path), train, holdout)


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
