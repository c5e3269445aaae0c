"""Group commit of the feedback store's writes: batched, each result to its caller, one bad write
never costing the others, nothing left behind at close."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection

from bot.feedback.groupcommit import GroupCommit
from bot.feedback.store import FeedbackStore

SALT = "group-commit-salt"


@pytest.fixture
def store(database_url: str) -> Iterator[FeedbackStore]:
    with FeedbackStore(database_url, SALT) as opened:
        yield opened


def recording(store: FeedbackStore, digit: int, chat_id: int) -> Any:
    crop = np.full((28, 28), digit * 20, np.uint8)
    return store.recording(
        crops=[crop],
        predicted=str(digit),
        confidences=[0.9],
        model_version="v1",
        chat_type="private",
        chat_id=chat_id,
        user_id=chat_id,
    )


async def test_a_burst_of_writes_shares_one_transaction_and_each_gets_its_result(
    store: FeedbackStore,
) -> None:
    writes = GroupCommit(store)
    try:
        ids = await asyncio.gather(
            *(writes.write(recording(store, n % 10, 5000 + n)) for n in range(40))
        )
        assert len(set(ids)) == 40
        assert writes.transactions == 1  # all 40 were queued before the first commit began
        linked = await asyncio.gather(
            *(writes.write(store.linking(sample_id, 900 + n)) for n, sample_id in enumerate(ids))
        )
        assert linked == [True] * 40 and writes.transactions == 2
        for n, sample_id in enumerate(ids):
            sample = store.find(5000 + n, 900 + n)
            assert sample is not None and sample.sample_id == sample_id
            assert sample.predicted == str(n % 10)
    finally:
        await writes.close()


async def test_one_failing_write_does_not_cost_the_others(store: FeedbackStore) -> None:
    writes = GroupCommit(store)

    def broken(connection: Connection) -> int:
        raise RuntimeError("this write fails")

    try:
        results = await asyncio.gather(
            writes.write(recording(store, 1, 7001)),
            writes.write(broken),
            writes.write(recording(store, 2, 7002)),
            return_exceptions=True,
        )
        first, failure, second = results
        assert isinstance(failure, RuntimeError) and str(failure) == "this write fails"
        assert isinstance(first, int) and isinstance(second, int) and first != second
        # The batch rolled back, then each write ran again on its own: both samples exist once.
        assert writes.transactions == 4
        assert store.stats().collected == 2
    finally:
        await writes.close()


async def test_close_commits_what_was_queued(store: FeedbackStore) -> None:
    writes = GroupCommit(store)
    pending = [asyncio.ensure_future(writes.write(recording(store, 3, 8000 + n))) for n in range(5)]
    await asyncio.sleep(0)  # queued, not yet committed
    await writes.close()
    assert all(task.done() and isinstance(task.result(), int) for task in pending)
    assert store.stats().collected == 5


def test_max_batch_must_be_positive(store: FeedbackStore) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(store, max_batch=0)
