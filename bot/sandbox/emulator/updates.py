"""The bot's update queue and long polling (getUpdates), as Telegram keeps them."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Callable, Container, Iterator
from typing import Any

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.params import Params, get_integer, get_json

CONFLICT_DESCRIPTION = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
WEBHOOK_ACTIVE_DESCRIPTION = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# What Telegram delivers when allowed_updates was never given or given as [].
DEFAULT_UPDATE_TYPES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
LONG_POLL_MAX_TIMEOUT = 50


class UpdateQueue:
    """The updates not yet confirmed by the bot, and the one long poll waiting for more."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 1
        self._allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self._long_poll: asyncio.Future[str] | None = None
        self.on_push: Callable[[], None] | None = None  # the webhook delivery's wake-up

    def __len__(self) -> int:
        return len(self._updates)

    @property
    def last_update_id(self) -> int:
        """The update_id of the latest update queued (0 before the first)."""
        return self._next_update_id - 1

    def clear(self) -> None:
        self._updates.clear()

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        # Like Telegram, types the bot did not allow are never queued.
        if kind not in self._allowed_updates:
            return
        self._updates.append({"update_id": self._next_update_id, kind: copy.deepcopy(payload)})
        self._next_update_id += 1
        while len(self._updates) > self.max_pending:
            self._updates.popleft()
        self.wake_long_poll("update")
        if self.on_push is not None:
            self.on_push()

    def wake_long_poll(self, reason: str) -> None:
        if self._long_poll is not None and not self._long_poll.done():
            self._long_poll.set_result(reason)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            # A negative offset keeps only the last -offset updates; the rest are forgotten.
            while len(self._updates) > -offset:
                self._updates.popleft()

    def oldest(self, skip: Container[int]) -> Iterator[dict[str, Any]]:
        """The queued updates, oldest first, except those in `skip` (not copies: read only)."""
        for update in list(self._updates):
            if update["update_id"] not in skip:
                yield update

    def remove(self, update_id: int) -> None:
        """Forget one update (its webhook POST was answered 2xx)."""
        for update in self._updates:
            if update["update_id"] == update_id:
                self._updates.remove(update)
                return

    def set_allowed_updates(self, allowed: Any) -> None:
        """allowed_updates of getUpdates or setWebhook (None: keep the previous setting)."""
        self._set_allowed_updates(allowed)

    def _pending(self, offset: int, limit: int) -> list[dict[str, Any]]:
        ready = [update for update in self._updates if update["update_id"] >= offset]
        return copy.deepcopy(ready[:limit])

    def _set_allowed_updates(self, allowed: Any) -> None:
        if allowed is None:
            return  # not given: keep the previous setting, as Telegram does
        if not isinstance(allowed, list):
            raise ApiError(400, "Bad Request: can't parse allowed updates JSON object")
        chosen = frozenset(str(name).lower() for name in allowed) & frozenset(UPDATE_TYPES)
        self._allowed_updates = chosen or DEFAULT_UPDATE_TYPES

    async def get_updates(self, params: Params, stopping: asyncio.Event) -> list[dict[str, Any]]:
        """getUpdates: confirm up to `offset`, then answer at once or when updates arrive."""
        offset = get_integer(params, "offset")
        limit = min(max(get_integer(params, "limit", 100), 1), 100)
        timeout = min(max(get_integer(params, "timeout"), 0), LONG_POLL_MAX_TIMEOUT)
        self._set_allowed_updates(get_json(params, "allowed_updates", "allowed updates"))
        self._confirm(offset)
        ready = self._pending(offset, limit)
        if ready or timeout == 0 or stopping.is_set():
            return ready
        # One long poll at a time: a newer one terminates the waiting one (409), as Telegram does.
        self.wake_long_poll("conflict")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiter: asyncio.Future[str] = loop.create_future()
        self._long_poll = waiter
        try:
            while True:
                try:
                    reason = await asyncio.wait_for(waiter, max(deadline - loop.time(), 0))
                except TimeoutError:
                    return self._pending(offset, limit)
                if reason == "conflict":
                    raise ApiError(409, CONFLICT_DESCRIPTION)
                ready = self._pending(offset, limit)
                if ready or reason == "stop":
                    return ready
                waiter = loop.create_future()
                self._long_poll = waiter
        finally:
            if self._long_poll is waiter:
                self._long_poll = None

    def pending(self) -> list[dict[str, Any]]:
        """The updates queued and not yet confirmed (copies)."""
        return copy.deepcopy(list(self._updates))
