"""Events for the sandbox page and for waiting tests: every change the emulator makes."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import Any, TypeVar

Result = TypeVar("Result")


class EventHub:
    """Subscribers' queues (the sandbox page) and the futures of callers waiting for a change."""

    def __init__(self) -> None:
        self._subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self._waiters: set[asyncio.Future[None]] = set()

    def subscribe(self, max_events: int) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_events)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def emit(self, event: dict[str, Any]) -> None:
        """Send `event` to every subscriber (a full queue drops its oldest) and wake waiters."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(copy.deepcopy(event))
        # Every change may be what a waiting test looks for.
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(
        self, check: Callable[[], Result | None], timeout: float, explain: Callable[[], str]
    ) -> Result:
        """`check()` once it is not None, rechecked after each event; TimeoutError(explain())."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(explain())
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                self._waiters.discard(waiter)
