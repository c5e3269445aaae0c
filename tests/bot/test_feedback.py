"""Tests of the feedback store (bot/feedback/store.py) on SQLite and, with TEST_DATABASE_URL,
PostgreSQL.

Every store test runs once per database. The PostgreSQL run gets a fresh schema of its own on the
server named by TEST_DATABASE_URL (`eval "$(.ci/postgres.sh)"` starts one on 127.0.0.1). Without
that variable the PostgreSQL runs fail when CI=true and are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import Column, Connection, String, func, inspect, select

from bot.feedback import schema
from bot.feedback.samples import Confirmation, ConfirmStatus
from bot.feedback.schema import (
    add_column,
    sample_digits_table,
    samples_table,
    schema_version_table,
)
from bot.feedback.store import FeedbackStore, normalize_url, open_store
from bot.settings import Settings
from tests.bot.conftest import POSTGRES_ENV, postgres_base_url, store_answer

SALT = "test-salt"
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A settable UTC clock, so caps and timestamps can be tested without waiting a day."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[FeedbackStore]:
    with FeedbackStore(database_url, SALT, clock=clock) as opened:
        yield opened


def random_crops(count: int, seed: int) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def record(
    store: FeedbackStore,
    predicted: str,
    *,
    crops: npt.NDArray[np.uint8] | None = None,
    seed: int = 0,
    user_id: int = 1001,
    chat_id: int = 1001,
    message_id: int | None = None,
    model_version: str = "v1",
    chat_type: str = "private",
) -> int:
    if crops is None:
        crops = random_crops(len(predicted), seed)
    return store_answer(
        store,
        crops=crops,
        predicted=predicted,
        confidences=[0.9] * len(predicted),
        model_version=model_version,
        chat_type=chat_type,
        chat_id=chat_id,
        user_id=user_id,
        message_id=message_id,
    )


# -- recording -------------------------------------------------------------------------------


def test_record_keeps_crops_and_salted_hashes_never_raw_ids(store: FeedbackStore) -> None:
    user_id, chat_id = 424242, -100777888
    float_crop = np.zeros((28, 28), dtype=np.float32)
    float_crop[10:18, 12:16] = 1.0
    float_crop[0, 0] = 0.5
    uint8_crop = random_crops(1, seed=3)[0]
    sample_id = store_answer(
        store,
        crops=[float_crop, uint8_crop],
        predicted="47",
        confidences=[0.93, 0.61],
        model_version="20260115-1200",
        chat_type="supergroup",
        chat_id=chat_id,
        user_id=user_id,
        message_id=55,
    )

    with store.engine.connect() as connection:
        sample = connection.execute(select(samples_table)).one()
        digits = connection.execute(
            select(sample_digits_table).order_by(sample_digits_table.c.position)
        ).all()
    expected_user = hmac.new(SALT.encode(), f"user:{user_id}".encode(), hashlib.sha256).hexdigest()
    expected_chat = hmac.new(SALT.encode(), f"chat:{chat_id}".encode(), hashlib.sha256).hexdigest()
    assert sample.id == sample_id
    assert sample.user_hash == expected_user
    assert sample.chat_hash == expected_chat
    assert (sample.predicted, sample.digit_count, sample.message_id) == ("47", 2, 55)
    assert (sample.chat_type, sample.model_version) == ("supergroup", "20260115-1200")
    assert sample.confidence == pytest.approx(0.61)
    assert sample.confirmed is None and sample.correct is None and sample.confirmed_at is None
    raw_ids = {str(user_id), str(chat_id), user_id, chat_id}
    for row in [sample, *digits]:
        for value in row:
            assert value not in raw_ids
            assert not (isinstance(value, str) and (str(user_id) in value or str(chat_id) in value))

    assert [row.position for row in digits] == [0, 1]
    assert [row.predicted for row in digits] == [4, 7]
    assert [row.confidence for row in digits] == pytest.approx([0.93, 0.61])
    first = np.frombuffer(digits[0].crop, dtype=np.uint8).reshape(28, 28)
    assert first[12, 13] == 255 and first[0, 0] == 128 and first[1, 1] == 0
    assert bytes(digits[1].crop) == uint8_crop.tobytes()

    stored = store.get(sample_id)
    assert stored is not None
    assert stored.predicted == "47" and stored.confidences == pytest.approx([0.93, 0.61])
    assert stored.created_at.tzinfo is not None
    assert store.find(chat_id, 55) == stored
    assert store.find(chat_id, 56) is None
    assert store.find(chat_id + 1, 55) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"predicted": "7a"}, "predicted must be"),
        ({"predicted": ""}, "predicted must be"),
        ({"crops": np.zeros((1, 28, 27), dtype=np.uint8)}, "28x28"),
        ({"crops": np.zeros((2, 28, 28), dtype=np.uint8)}, "one crop and one confidence"),
        ({"confidences": [0.5, 0.5]}, "one crop and one confidence"),
        ({"confidences": [1.5]}, r"\[0, 1\]"),
        ({"crops": np.full((1, 28, 28), 2.0, dtype=np.float32)}, r"\[0, 1\]"),
        ({"crops": np.zeros((1, 28, 28), dtype=np.int32)}, "uint8 or float"),
        ({"chat_type": "channel"}, "chat_type"),
        ({"model_version": ""}, "model_version"),
    ],
)
def test_record_rejects_bad_input(
    store: FeedbackStore, changes: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "crops": np.zeros((1, 28, 28), dtype=np.uint8),
        "predicted": "3",
        "confidences": [0.5],
        "model_version": "v1",
        "chat_type": "private",
        "chat_id": 1,
        "user_id": 1,
    }
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        store_answer(store, **arguments)
    assert store.stats().collected == 0


def test_link_message_lets_a_button_find_the_sample(store: FeedbackStore) -> None:
    sample_id = record(store, "5", chat_id=-100123)
    assert store.find(-100123, 77) is None
    assert store.transact([store.linking(sample_id, 77)])[0] is True
    found = store.find(-100123, 77)
    assert found is not None and found.sample_id == sample_id
    assert store.transact([store.linking(sample_id + 1000, 78)])[0] is False


# -- confirming ------------------------------------------------------------------------------


def test_first_confirmation_wins_and_later_ones_get_its_value(
    store: FeedbackStore, clock: FakeClock
) -> None:
    sample_id = record(store, "7", chat_id=-100555, message_id=12)
    clock.advance(timedelta(minutes=3))

    first = store.confirm(chat_id=-100555, message_id=12, user_id=2002, confirmed="1")
    assert first.status is ConfirmStatus.CONFIRMED
    assert (first.sample_id, first.predicted, first.confirmed, first.correct) == (
        sample_id,
        "7",
        "1",
        False,
    )
    later = store.confirm(sample_id=sample_id, user_id=3003, confirmed="7")
    assert later.status is ConfirmStatus.ALREADY_CONFIRMED
    assert (later.confirmed, later.correct) == ("1", False)

    stored = store.get(sample_id)
    assert stored is not None
    assert (stored.confirmed, stored.correct) == ("1", False)
    assert stored.confirmed_at == clock.now
    with store.engine.connect() as connection:
        confirmer = connection.execute(select(samples_table.c.confirmer_hash)).scalar_one()
    assert confirmer == store.user_hash(2002)


def test_confirm_without_a_number_means_the_prediction_was_right(store: FeedbackStore) -> None:
    sample_id = record(store, "2026")
    result = store.confirm(sample_id=sample_id, user_id=1001)
    assert result.status is ConfirmStatus.CONFIRMED
    assert (result.confirmed, result.correct) == ("2026", True)


def test_confirm_of_a_missing_sample_is_not_found(store: FeedbackStore) -> None:
    assert store.confirm(sample_id=999, user_id=1).status is ConfirmStatus.NOT_FOUND
    missing = store.confirm(chat_id=5, message_id=6, user_id=1, confirmed="3")
    assert missing.status is ConfirmStatus.NOT_FOUND
    with pytest.raises(ValueError, match="one way"):
        store.confirm(user_id=1, confirmed="3")
    with pytest.raises(ValueError, match="one way"):
        store.confirm(sample_id=1, chat_id=5, message_id=6, user_id=1)
    sample_id = record(store, "3")
    with pytest.raises(ValueError, match="confirmed must be"):
        store.confirm(sample_id=sample_id, user_id=1, confirmed="three")


def test_concurrent_confirmations_have_exactly_one_winner(store: FeedbackStore) -> None:
    # Several rounds: one race can come out right by luck even without the guard.
    for round_number in range(10):
        sample_id = record(store, "4", chat_type="group", chat_id=-100999, seed=round_number)
        start = threading.Barrier(8)

        def press(
            user_id: int, sample_id: int = sample_id, start: threading.Barrier = start
        ) -> Confirmation:
            start.wait()
            return store.confirm(sample_id=sample_id, user_id=user_id, confirmed=str(user_id))

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(press, range(8)))
        winners = [result for result in results if result.status is ConfirmStatus.CONFIRMED]
        assert len(winners) == 1, f"round {round_number}: {results}"
        losers = [result for result in results if result is not winners[0]]
        assert {result.status for result in losers} == {ConfirmStatus.ALREADY_CONFIRMED}
        assert {result.confirmed for result in losers} == {winners[0].confirmed}
        stored = store.get(sample_id)
        assert stored is not None and stored.confirmed == winners[0].confirmed


def test_caps_limit_confirmations_per_day_and_in_total(database_url: str, clock: FakeClock) -> None:
    with FeedbackStore(
        database_url, SALT, max_confirmations_per_day=3, max_confirmations_total=5, clock=clock
    ) as store:
        sample_ids = [record(store, "1", seed=seed) for seed in range(8)]
        results = [store.confirm(sample_id=sample_id, user_id=66) for sample_id in sample_ids[:4]]
        assert [result.status for result in results] == [ConfirmStatus.CONFIRMED] * 3 + [
            ConfirmStatus.CAPPED
        ]
        # Someone else is not held back by user 66's cap.
        other = store.confirm(sample_id=sample_ids[3], user_id=77)
        assert other.status is ConfirmStatus.CONFIRMED

        clock.advance(timedelta(hours=23))
        assert store.confirm(sample_id=sample_ids[4], user_id=66).status is ConfirmStatus.CAPPED
        clock.advance(timedelta(hours=2))
        fresh_day = [
            store.confirm(sample_id=sample_id, user_id=66) for sample_id in sample_ids[4:7]
        ]
        assert [result.status for result in fresh_day] == [
            ConfirmStatus.CONFIRMED,
            ConfirmStatus.CONFIRMED,
            ConfirmStatus.CAPPED,  # 5 in total
        ]
        clock.advance(timedelta(days=3))
        assert store.confirm(sample_id=sample_ids[7], user_id=66).status is ConfirmStatus.CAPPED
        capped = store.get(sample_ids[7])
        assert capped is not None and capped.confirmed is None
        assert store.stats().confirmed == 6


# -- forgetting ------------------------------------------------------------------------------


def test_forget_deletes_what_the_user_sent_and_withdraws_their_confirmations(
    store: FeedbackStore,
) -> None:
    ann, bob = 1001, 2002
    ann_first = record(store, "1", user_id=ann, seed=1)
    ann_second = record(store, "22", user_id=ann, seed=2)
    bob_sample = record(store, "3", user_id=bob, seed=3)
    bob_own = record(store, "4", user_id=bob, seed=4)
    store.confirm(sample_id=ann_first, user_id=ann, confirmed="7")
    store.confirm(sample_id=bob_sample, user_id=ann, confirmed="8")  # Ann labelled Bob's photo
    store.confirm(sample_id=bob_own, user_id=bob)

    assert store.forget(ann) == 3
    assert store.get(ann_first) is None and store.get(ann_second) is None
    withdrawn = store.get(bob_sample)
    assert withdrawn is not None and withdrawn.confirmed is None and withdrawn.correct is None
    kept = store.get(bob_own)
    assert kept is not None and kept.confirmed == "4"
    with store.engine.connect() as connection:
        left = connection.execute(select(sample_digits_table.c.sample_id)).scalars().all()
        hashes = connection.execute(
            select(samples_table.c.user_hash, samples_table.c.confirmer_hash)
        ).all()
    assert sorted(left) == [bob_sample, bob_own]  # the deleted samples' crops went too
    assert store.user_hash(ann) not in {value for row in hashes for value in row}
    assert store.forget(ann) == 0
    # The withdrawn sample can be confirmed again; new ids never reuse a deleted one.
    assert store.confirm(sample_id=bob_sample, user_id=bob).status is ConfirmStatus.CONFIRMED
    assert record(store, "5", user_id=bob, seed=5) > bob_own


# -- training data, stats, export ------------------------------------------------------------


def test_exact_duplicates_are_merged(store: FeedbackStore) -> None:
    crop = random_crops(1, seed=11)
    first = record(store, "6", crops=crop, user_id=1)
    second = record(store, "6", crops=crop, user_id=2)
    relabelled = record(store, "6", crops=crop, user_id=3)
    other = record(store, "6", seed=12, user_id=4)
    store.confirm(sample_id=first, user_id=1)
    store.confirm(sample_id=second, user_id=2)
    store.confirm(sample_id=relabelled, user_id=3, confirmed="5")
    store.confirm(sample_id=other, user_id=4)

    everything = store.training_samples(include_holdout=True)
    assert len(everything.y) == 3
    by_label = {
        (int(label), image.tobytes()): int(count)
        for image, label, count in zip(everything.x, everything.y, everything.counts, strict=True)
    }
    assert by_label[(6, crop[0].tobytes())] == 2
    assert by_label[(5, crop[0].tobytes())] == 1
    # Stats still count every confirmed answer.
    assert store.stats().confirmed == 4


def test_multi_digit_numbers_give_one_row_per_digit_when_lengths_match(
    store: FeedbackStore,
) -> None:
    crops = random_crops(4, seed=21)
    year = record(store, "2026", crops=crops)
    misread = record(store, "17", seed=22)
    store.confirm(sample_id=year, user_id=1, confirmed="2028")
    store.confirm(sample_id=misread, user_id=1, confirmed="117")  # a digit was missed: no rows

    samples = store.training_samples(include_holdout=True)
    assert samples.x.shape == (4, 28, 28) and samples.x.dtype == np.uint8
    assert samples.y.dtype == np.uint8
    assert samples.y.tolist() == [2, 0, 2, 8]
    assert np.array_equal(samples.x, crops)
    assert samples.counts.tolist() == [1, 1, 1, 1]


def test_holdout_split_is_deterministic_and_disjoint(database_url: str, clock: FakeClock) -> None:
    crops = random_crops(200, seed=31)
    with FeedbackStore(
        database_url,
        SALT,
        clock=clock,
        max_confirmations_per_day=1000,
        max_confirmations_total=1000,
    ) as store:
        for index in range(200):
            sample_id = record(store, str(index % 10), crops=crops[index : index + 1])
            store.confirm(sample_id=sample_id, user_id=1)
        record(store, "9", seed=32)  # unconfirmed: in neither part
        train = store.training_samples(include_holdout=False)
        holdout = store.holdout_samples()
        everything = store.training_samples(include_holdout=True)

    train_images = {image.tobytes() for image in train.x}
    holdout_images = {image.tobytes() for image in holdout.x}
    assert not train_images & holdout_images
    assert len(train.y) + len(holdout.y) == 200 == len(everything.y)
    assert train_images | holdout_images == {image.tobytes() for image in crops}
    assert 20 <= len(holdout.y) <= 60  # about 20 % of 200
    for image, label in zip(holdout.x, holdout.y, strict=True):
        index = next(i for i in range(200) if np.array_equal(crops[i], image))
        assert label == index % 10

    with FeedbackStore(database_url, SALT, clock=clock) as reopened:
        again = reopened.holdout_samples()
    assert np.array_equal(again.x, holdout.x) and np.array_equal(again.y, holdout.y)


def test_empty_store_gives_empty_arrays_and_no_accuracy(store: FeedbackStore) -> None:
    samples = store.training_samples(include_holdout=True)
    assert samples.x.shape == (0, 28, 28) and samples.y.shape == (0,)
    stats = store.stats()
    assert (stats.collected, stats.confirmed, stats.live_accuracy) == (0, 0, None)
    assert stats.confusion == [[0] * 10 for _ in range(10)]


def test_stats_count_answers_accuracy_and_confusion(store: FeedbackStore) -> None:
    right = record(store, "3", seed=1)
    wrong = record(store, "8", seed=2)
    number = record(store, "17", seed=3)
    record(store, "5", seed=4)  # never confirmed
    other_model = record(store, "9", seed=5, model_version="v2")
    store.confirm(sample_id=right, user_id=1)
    store.confirm(sample_id=wrong, user_id=1, confirmed="3")
    store.confirm(sample_id=number, user_id=1, confirmed="71")
    store.confirm(sample_id=other_model, user_id=1)

    stats = store.stats()
    assert (stats.collected, stats.confirmed) == (5, 4)
    assert (stats.confirmed_right, stats.confirmed_wrong) == (2, 2)
    assert stats.live_accuracy == pytest.approx(0.5)
    expected = np.zeros((10, 10), dtype=int)
    expected[3, 3] += 1  # right
    expected[3, 8] += 1  # 8 that was a 3
    expected[7, 1] += 1  # "17" that was "71"
    expected[1, 7] += 1
    expected[9, 9] += 1
    assert np.array_equal(np.array(stats.confusion), expected)

    only_v2 = store.stats(model_version="v2")
    assert (only_v2.collected, only_v2.confirmed, only_v2.live_accuracy) == (1, 1, 1.0)


def test_export_npz_writes_mnist_format(store: FeedbackStore, tmp_path: Path) -> None:
    for seed in range(40):
        sample_id = record(store, str(seed % 10), seed=seed)
        store.confirm(sample_id=sample_id, user_id=seed)
    year = record(store, "1984", seed=99)
    store.confirm(sample_id=year, user_id=1)

    target = tmp_path / "out" / "feedback.npz"
    counts = store.export_npz(target)
    with np.load(target) as data:
        assert sorted(data.files) == ["x_test", "x_train", "y_test", "y_train"]
        arrays = {key: data[key] for key in data.files}
    assert counts.train + counts.test == 44
    assert arrays["x_train"].shape == (counts.train, 28, 28)
    assert arrays["x_test"].shape == (counts.test, 28, 28)
    for key in arrays:
        assert arrays[key].dtype == np.uint8
    assert np.array_equal(arrays["x_test"], store.holdout_samples().x)
    assert np.array_equal(arrays["y_train"], store.training_samples().y)
    assert not list(target.parent.glob(".feedback.npz.*"))  # no temporary file left behind


# -- schema, settings, SQLite specifics ------------------------------------------------------


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


# -- nothing lost ----------------------------------------------------------------------------


def test_concurrent_writes_are_all_kept(database_url: str) -> None:
    threads, writes = 8, 50
    with FeedbackStore(database_url, SALT, max_confirmations_total=10_000) as store:

        def write_many(thread: int) -> list[tuple[int, str]]:
            written = []
            for index in range(writes):
                predicted = f"{thread}{index % 10}"
                sample_id = record(
                    store,
                    predicted,
                    seed=thread * 1000 + index,
                    user_id=thread,
                    chat_id=-100 - thread,
                    message_id=index,
                    chat_type="group",
                )
                if index % 5 == 0:
                    store.confirm(chat_id=-100 - thread, message_id=index, user_id=thread)
                written.append((sample_id, predicted))
            return written

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = [item for batch in pool.map(write_many, range(threads)) for item in batch]

        assert len({sample_id for sample_id, _ in results}) == threads * writes
        for sample_id, predicted in results:
            stored = store.get(sample_id)
            assert stored is not None and stored.predicted == predicted
        with store.engine.connect() as connection:
            digit_rows = connection.execute(
                select(func.count()).select_from(sample_digits_table)
            ).scalar_one()
        assert digit_rows == threads * writes * 2
        stats = store.stats()
        assert (stats.collected, stats.confirmed) == (threads * writes, threads * writes // 5)


CRASH_CHILD = """
import sys
import numpy as np
from bot.feedback.store import FeedbackStore

store = FeedbackStore(sys.argv[1], "crash-salt", max_confirmations_total=10**6,
                      max_confirmations_per_day=10**6)
rng = np.random.default_rng(0)
index = 0
while True:
    crops = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    [sample_id] = store.transact([store.recording(
        crops=crops, predicted=f"{index % 10}{(index + 1) % 10}", confidences=[0.5, 0.6],
        model_version="crash", chat_type="group", chat_id=-1, user_id=index % 7,
        message_id=index)])
    store.confirm(sample_id=sample_id, user_id=99, confirmed=f"{(index + 3) % 100:02d}")
    # Printed only after both commits returned: the parent may rely on every printed id.
    print(sample_id, index, flush=True)
    index += 1
"""


def test_samples_survive_a_kill_in_the_middle_of_a_burst(database_url: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, database_url],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    acknowledged: dict[int, int] = {}
    try:
        while len(acknowledged) < 60:
            line = lines.get(timeout=60)
            if line is None:
                break
            sample_id, index = map(int, line.split())
            acknowledged[sample_id] = index
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    reader.join(timeout=30)
    while (line := lines.get_nowait()) is not None:  # ids printed just before the kill
        sample_id, index = map(int, line.split())
        acknowledged[sample_id] = index
    stderr = child.stderr.read() if child.stderr else ""
    assert child.returncode == -signal.SIGKILL, f"the writer died on its own:\n{stderr}"
    assert len(acknowledged) >= 60, f"the writer stopped early:\n{stderr}"

    with FeedbackStore(database_url, "crash-salt") as reopened:
        if reopened.url.get_backend_name() == "sqlite":
            with reopened.engine.connect() as connection:
                check = connection.exec_driver_sql("PRAGMA integrity_check").scalar()
            assert check == "ok"
        for sample_id, index in acknowledged.items():
            stored = reopened.get(sample_id)
            assert stored is not None, f"sample {sample_id} was acknowledged but is gone"
            assert stored.predicted == f"{index % 10}{(index + 1) % 10}"
            assert stored.confirmed == f"{(index + 3) % 100:02d}"
        # The reopened store takes new writes after the crash.
        assert record(reopened, "1") > max(acknowledged)
