"""One webhook replica's part of the cluster (REPLICA_ID set): the update ledger and the shared
flood counters, on DATABASE_URL's PostgreSQL.

bot/app.py makes the `Replica` (and hands its flood counters to the handlers); the webhook server
(bot/transport/webhook.py) records each update with `accept` before it answers 200, and the
update processor calls `finished` once the update was handled. `start` runs the replica's lease
keeper: every third of REPLICA_LEASE_SECONDS it renews this replica's leases and takes over the
updates whose lease ran out, handing them to the bot as if they had just arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from telegram import Message, Update

from bot.cluster.flood import SharedFloodCounter
from bot.cluster.ledger import UpdateLedger, postgres_engine
from bot.settings import Settings
from bot.transport.webhook import REPLICA_KEY  # where bot/app.py keeps the Replica in bot_data

logger = logging.getLogger(__name__)

FORGET_EVERY_TICKS = 100  # old ledger rows and ended flood windows are deleted this often
TAKE_OVER_BATCH = 100


class Replica:
    """This replica's ledger and flood counters; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        if not settings.replica_id:
            raise ValueError("a Replica needs REPLICA_ID, this replica's name")
        if settings.webhook_url is None:
            raise ValueError(
                "REPLICA_ID is for webhook replicas (`digitbot run --webhook`, WEBHOOK_URL): "
                "long polling allows one bot per token"
            )
        if settings.webhook_secret_token is None:
            raise ValueError(
                "REPLICA_ID needs WEBHOOK_SECRET_TOKEN, the same on every replica: with a "
                "secret of its own, each replica's setWebhook would lock the others out"
            )
        self.owner = settings.replica_id
        self.lease_seconds = settings.replica_lease_seconds
        self.engine = postgres_engine(settings.database_url, "REPLICA_ID")
        self.ledger = UpdateLedger(self.engine, timedelta(seconds=self.lease_seconds))
        self.flood = SharedFloodCounter(self.engine)
        self.duplicates = 0  # updates acknowledged without handling: already in the ledger
        self.taken_over = 0  # updates this replica took over after their lease ran out
        self._unfinished: set[int] = set()  # handled, but marking them done failed: retried
        # (chat id, message id) -> update_id of the messages being handled, and the updates
        # marked done the moment their answer was sent (`answered`)
        self._by_message: dict[tuple[int, int], int] = {}
        self._done_early: set[int] = set()
        self._keeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the tables if missing (a bad DATABASE_URL stops the start here)."""
        await asyncio.to_thread(self.ledger.create)
        await asyncio.to_thread(self.flood.create)

    async def accept(self, update: Update, body: str) -> bool:
        """Record an update before it is acknowledged; False: it was recorded before, so it is
        acknowledged and not handled again. SQLAlchemyError: answer 5xx, Telegram retries."""
        fresh = await asyncio.to_thread(self.ledger.accept, update.update_id, body, self.owner)
        if fresh:
            self.handling(update)
        else:
            self.duplicates += 1
        return fresh

    def handling(self, update: Update) -> None:
        """Note which message the update carries, so that `answered` finds it."""
        if update.message is not None:
            self._by_message[(update.message.chat_id, update.message.message_id)] = update.update_id

    async def answered(self, message: Message) -> None:
        """The answer to `message` was sent: mark its update done now, not when the handler
        ends (its last writes take longer, and a replica dying meanwhile would repeat it)."""
        update_id = self._by_message.pop((message.chat_id, message.message_id), None)
        if update_id is not None and await self._finish(update_id):
            self._done_early.add(update_id)

    async def finished(self, update: object) -> None:
        """Mark an update handled (the update processor calls this)."""
        if not isinstance(update, Update):
            return
        if update.message is not None:
            self._by_message.pop((update.message.chat_id, update.message.message_id), None)
        if update.update_id in self._done_early:
            self._done_early.discard(update.update_id)
            return
        await self._finish(update.update_id)

    async def _finish(self, update_id: int) -> bool:
        try:
            await asyncio.to_thread(self.ledger.finish, update_id)
        except SQLAlchemyError:
            logger.exception("cannot mark update %d done; retrying later", update_id)
            self._unfinished.add(update_id)
            return False
        return True

    def start(self, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Run the lease keeper; `handle(update JSON)` gets each update taken over."""
        if self._keeper is not None:
            raise ValueError("the lease keeper is already running")
        self._keeper = asyncio.get_running_loop().create_task(
            self._keep_leases(handle), name="replica-leases"
        )

    async def close(self) -> None:
        """Stop the lease keeper, hand back the leases of updates not handled, close the pool."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        try:
            released = await asyncio.to_thread(self.ledger.release, self.owner)
            if released:
                logger.warning("left %d update(s) unhandled for the other replicas", released)
        except SQLAlchemyError:
            logger.exception("cannot release the leases; they run out on their own")
        await asyncio.to_thread(self.engine.dispose)

    async def tick(self, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
        """Renew this replica's leases and take over expired ones; how many were taken over."""
        for update_id in list(self._unfinished):
            await asyncio.to_thread(self.ledger.finish, update_id)
            self._unfinished.discard(update_id)
        await asyncio.to_thread(self.ledger.renew, self.owner)
        taken = await asyncio.to_thread(self.ledger.take_over, self.owner, TAKE_OVER_BATCH)
        for update_id, body in taken:
            logger.warning("taking over update %d: its replica stopped renewing", update_id)
            self.taken_over += 1
            await handle(json.loads(body))
        return len(taken)

    async def _keep_leases(self, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        ticks = 0
        while True:
            try:
                await self.tick(handle)
                ticks += 1
                if ticks % FORGET_EVERY_TICKS == 0:
                    await asyncio.to_thread(self.ledger.forget_old)
                    await asyncio.to_thread(self.flood.forget_old)
            except SQLAlchemyError:
                logger.exception("the update ledger is unreachable; trying again")
            await asyncio.sleep(self.lease_seconds / 3)


def get_replica(bot_data: dict[str, Any]) -> Replica | None:
    """The application's Replica, or None (one bot, no REPLICA_ID)."""
    replica = bot_data.get(REPLICA_KEY)
    return replica if isinstance(replica, Replica) else None
