"""Confirmations in the feedback store: the first one wins, races, caps per day and in total."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.feedback.samples import Confirmation, ConfirmStatus
from bot.feedback.schema import samples_table
from bot.feedback.store import FeedbackStore
from tests.bot.feedback.conftest import SALT, FakeClock, record


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
