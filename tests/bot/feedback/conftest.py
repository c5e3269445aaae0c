"""Fixtures of the feedback-store tests (bot/feedback/): a settable clock, a store on each
database, and `record` for one served answer.

Every store test runs once per database (`database_url`, tests/bot/conftest.py). The PostgreSQL run
gets a fresh schema of its own on the server named by TEST_DATABASE_URL (`eval "$(.ci/postgres.sh)"`
starts one on 127.0.0.1). Without that variable the PostgreSQL runs fail when CI=true and are
skipped, with the reason, elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from bot.feedback.store import FeedbackStore
from tests.bot.conftest import store_answer

SALT = "test-salt"


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
