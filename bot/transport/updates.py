"""How many updates the bot handles at once: every update starts at once, except image work.

PTB's default processor lets N updates run and queues the rest in arrival order, so a /start that
arrives behind 500 photos waits until most of them are done (about 10 s in `digitbot bench
--load`). Here only image work (a photo or document, or a command sent as a reply to one, which
downloads and classifies it) waits for one of a bounded number of image slots; commands, text and
button presses run at once. The bound is what keeps memory in check: an image update holds its
download (up to MAX_DOWNLOAD_BYTES) only while it has a slot.

On a replica (REPLICA_ID) `on_finished` is told of every update handled, so the shared ledger
marks it done (bot/cluster/replica.py); an update cut short by a stop is not, and another
replica takes it over.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Message, Update
from telegram.ext import BaseUpdateProcessor

MAX_UPDATES_AT_ONCE = 4096  # waiting updates are small objects; this only bounds the bookkeeping


def needs_image_slot(update: object) -> bool:
    """Whether handling this update may download and classify an image."""
    if not isinstance(update, Update):
        return False
    message = update.message
    if message is None:
        return False
    replied = message.reply_to_message
    return has_file(message) or (replied is not None and has_file(replied))


def has_file(message: Message) -> bool:
    return bool(message.photo or message.document)


class ImageSlotProcessor(BaseUpdateProcessor):
    """Image updates wait for one of `image_slots`; every other update runs at once."""

    def __init__(self, image_slots: int, max_updates: int = MAX_UPDATES_AT_ONCE) -> None:
        if image_slots < 1:
            raise ValueError(f"image_slots must be at least 1, got {image_slots}")
        super().__init__(max(max_updates, image_slots))
        self.image_slots = image_slots
        self._slots: asyncio.Semaphore | None = None  # made in the running event loop
        self.on_finished: Callable[[object], Awaitable[None]] | None = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run `coroutine` (now, or once an image slot is free for an image update), then tell
        `on_finished`, unless it was cancelled."""
        try:
            await self._run(update, coroutine)
        except asyncio.CancelledError:
            raise
        except Exception:
            if self.on_finished is not None:
                await self.on_finished(update)  # handled, if with an error: never again
            raise
        if self.on_finished is not None:
            await self.on_finished(update)

    async def _run(self, update: object, coroutine: Awaitable[Any]) -> None:
        if not needs_image_slot(update):
            await coroutine
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.image_slots)
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            if inspect.iscoroutine(coroutine):
                coroutine.close()  # never started: no "never awaited" warning
            raise
        try:
            await coroutine
        finally:
            self._slots.release()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""
