"""The bot's runtime state, kept in `application.bot_data` (never in module globals), and the
callback context every handler gets (`context.state` is that state).

One `BotState` per Application: the settings, the served classifier, the processes (or threads)
that classify images, a thread pool for other slow work, counters for /stats, the per-user flood
gate, the feedback store (opened in post_init) and the running /retrain job, if any.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from telegram import Message
from telegram.ext import Application, CallbackContext, ExtBot, JobQueue

from bot.settings import Settings
from core.serving import (
    Classification,
    Classifier,
    ClassifierWorkers,
    ImageTimeoutError,
)

if TYPE_CHECKING:
    from bot.feedback.groupcommit import GroupCommit
    from bot.feedback.store import FeedbackStore
    from bot.training import RetrainJob, SharedTraining

STATE_KEY = "digitbot"


class FloodVerdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # over the limit: answer politely, once per window
    DROP = "drop"  # over the limit and already warned: stay silent


@dataclass
class FloodGate:
    """A sliding-window limit on requests per key (`limit` per `window` seconds); the key is a
    user id, or (user id, chat id) for a user's share of a group."""

    limit: int
    window: float
    max_tracked_users: int = 10_000
    _events: dict[Hashable, deque[float]] = field(default_factory=dict)
    _warned_at: dict[Hashable, float] = field(default_factory=dict)

    def check(self, user_id: Hashable, now: float | None = None) -> FloodVerdict:
        """Count one request of `user_id` and say whether to serve it."""
        now = time.monotonic() if now is None else now
        if len(self._events) > self.max_tracked_users:
            self._forget_idle(now)
        events = self._events.setdefault(user_id, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) < self.limit:
            events.append(now)
            return FloodVerdict.ALLOW
        warned_at = self._warned_at.get(user_id)
        if warned_at is not None and now - warned_at < self.window:
            return FloodVerdict.DROP
        self._warned_at[user_id] = now
        return FloodVerdict.WARN

    def seconds_until_free(self, user_id: Hashable, now: float | None = None) -> float:
        """How long until `user_id` may send another image."""
        now = time.monotonic() if now is None else now
        events = self._events.get(user_id)
        if not events or len(events) < self.limit:
            return 0.0
        return max(0.0, self.window - (now - events[0]))

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded: drop users with no request inside the window."""
        idle = [
            user
            for user, events in self._events.items()
            if not events or now - events[-1] >= self.window
        ]
        for user in idle:
            self._events.pop(user, None)
            self._warned_at.pop(user, None)


class SharedFlood(Protocol):
    """Flood counters shared by several replicas (bot/cluster/flood.py)."""

    async def count(
        self, gate: str, key: Hashable, limit: int, window: float
    ) -> tuple[FloodVerdict, float]:
        """The verdict for one more request of `key` at `gate`, and the seconds until free."""
        ...


@dataclass
class BotState:
    """Everything the handlers share; one instance in `application.bot_data[STATE_KEY]`."""

    settings: Settings
    classifier: Classifier
    executor: ThreadPoolExecutor
    flood: FloodGate  # images
    actions: FloodGate  # commands and button presses (bot/handlers/flood.py)
    group_shares: FloodGate  # answers per (user, group) (bot/handlers/flood.py)
    # REPLICA_ID: the gates above count in PostgreSQL, shared by every replica (set by bot/app.py)
    shared_flood: SharedFlood | None = None
    # REPLICA_ID: told the moment a photo's answer is sent, so the ledger marks its update done
    # before anything slower (bot/cluster/replica.py); a replica dying later repeats nothing.
    on_answered: Callable[[Message], Awaitable[None]] | None = None
    workers: ClassifierWorkers | None = None  # None: images are classified in `executor`
    started_monotonic: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    predictions_served: int = 0
    total_answer_seconds: float = 0.0  # handler start to answer ready (download + model)
    total_model_seconds: float = 0.0  # preprocessing + inference only
    retrain: RetrainJob | None = None
    retrain_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # RETRAIN_ON_WORKER: /retrain is queued for `digitbot worker` (set by bot/app.py)
    shared_training: SharedTraining | None = None
    # on `digitbot worker`: stores a promoted candidate's folder where every replica finds it
    publish_model: Callable[[Path], Awaitable[None]] | None = None
    feedback: FeedbackStore | None = None  # opened by post_init, closed by post_shutdown
    store_writes: GroupCommit | None = None  # the answers' writes to `feedback`, batched
    # sample id -> set once the answer's message id is stored (a button may be pressed sooner)
    pending_links: dict[int, asyncio.Event] = field(default_factory=dict)
    # updates arrive on bot/transport/webhook.py's server, not by polling
    webhook_serving: bool = False
    # image work in progress -> when it started (monotonic); read by the heartbeat
    images_in_flight: dict[object, float] = field(default_factory=dict)
    image_threads: asyncio.Semaphore | None = None  # made in the event loop, by `classify`

    async def classify(self, image: bytes) -> Classification:
        """Preprocess and predict off the event loop: in the worker processes, else a thread.
        Either way the sender's wait is bounded by IMAGE_TIMEOUT_SECONDS (ImageTimeoutError)."""
        max_pixels = self.settings.max_image_pixels
        key = object()
        self.images_in_flight[key] = time.monotonic()
        if self.workers is not None:
            try:
                return await self.workers.classify(image, max_pixels=max_pixels)
            finally:
                self.images_in_flight.pop(key, None)
        # A thread cannot be stopped: the sender is answered at the deadline, and the image
        # stays "in flight" until the thread returns, so the health check sees a stuck one.
        # One image per thread at a time: the budget does not count the wait for a thread.
        if self.image_threads is None:
            self.image_threads = asyncio.Semaphore(self.settings.worker_threads)
        async with self.image_threads:
            future = asyncio.get_running_loop().run_in_executor(
                self.executor,
                functools.partial(self.classifier.classify, image, max_pixels=max_pixels),
            )
            future.add_done_callback(lambda _: self.images_in_flight.pop(key, None))
            timeout = self.settings.image_timeout_seconds
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise ImageTimeoutError(timeout) from None

    def stuck_images(self) -> str | None:
        """What is wrong when image work has run well past its time budget, else None."""
        if not self.images_in_flight:
            return None
        oldest = time.monotonic() - min(self.images_in_flight.values())
        limit = 2 * self.settings.image_timeout_seconds
        if oldest <= limit:
            return None
        return (
            f"{len(self.images_in_flight)} image(s) in progress, the oldest for {oldest:.0f} s "
            f"(IMAGE_TIMEOUT_SECONDS is {self.settings.image_timeout_seconds:g})"
        )

    def record_prediction(self, answer_seconds: float, model_seconds: float) -> None:
        self.predictions_served += 1
        self.total_answer_seconds += answer_seconds
        self.total_model_seconds += model_seconds

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic


def get_state(bot_data: dict[str, Any]) -> BotState:
    """The BotState stored by `bot.app.build_application`."""
    state = bot_data.get(STATE_KEY)
    if not isinstance(state, BotState):
        raise ValueError("bot_data has no BotState: build the Application with build_application")
    return state


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[str, Any]]):
    """The context of every callback (`ContextTypes(context=BotContext)` in bot/app.py)."""

    @property
    def state(self) -> BotState:
        """This Application's BotState."""
        return get_state(self.bot_data)


# The Application that bot.app.build_application builds (its context type is BotContext).
BotApplication = Application[
    ExtBot[Any], BotContext, dict[Any, Any], dict[Any, Any], dict[Any, Any], JobQueue[Any]
]
