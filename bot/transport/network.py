"""Retrying Bot API requests that got no answer: a 5xx, a timeout, a dropped connection.

PTB raises `NetworkError` (or its subclass `TimedOut`) for those and does not retry, so a short
outage of the Bot API would turn every photo in flight into "something went wrong". Here each
request is retried `retries` times, waiting 0.5 s, 1 s, 2 s ... in between. Telegram's answers
that are final (400 Bad Request, 403, 409 ...) are never retried; 429 Too Many Requests is
retried by PTB's AIORateLimiter after the `retry_after` Telegram asks for.

The trade-off of retrying after a timeout: Telegram has no idempotency key, so if a timed-out
sendMessage did arrive, the retry sends the answer twice. Not retrying loses it instead; with
5 s timeouts against answers that normally take a tenth of a second, a timeout almost always
means the request never got through, so the bot retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from telegram.error import BadRequest, NetworkError
from telegram.ext import AIORateLimiter

logger = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.5
Result = TypeVar("Result")


def is_transient(error: BaseException) -> bool:
    """A failure worth retrying: no answer, or a server error (BadRequest is final)."""
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)


async def with_retries(call: Callable[[], Awaitable[Result]], retries: int, what: str) -> Result:
    """`await call()`, retried up to `retries` times after transient failures."""
    delay = FIRST_DELAY_SECONDS
    attempt = 0
    while True:
        try:
            return await call()
        except NetworkError as error:
            if attempt >= retries or not is_transient(error):
                raise
            attempt += 1
            logger.warning(
                "%s failed (%s: %s); retry %d of %d in %.1f s",
                what,
                type(error).__name__,
                error,
                attempt,
                retries,
                delay,
            )
            await asyncio.sleep(delay)
            delay *= 2


class RetryingRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (Telegram's flood limits, 429 handling) that also retries every
    Bot API method after transient failures. getUpdates does not pass through a rate limiter;
    PTB's Updater retries it on its own, and unconfirmed updates stay on the server."""

    def __init__(self, *, retries: int, **options: Any) -> None:
        super().__init__(**options)
        if retries < 0:
            raise ValueError(f"retries must not be negative, got {retries}")
        self.retries = retries

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """One request through the flood limits, retried after transient failures."""
        parent = super().process_request

        async def attempt() -> bool | dict[str, Any] | list[dict[str, Any]]:
            return await parent(callback, args, kwargs, endpoint, data, rate_limit_args)

        return await with_retries(attempt, self.retries, endpoint)
