"""Webhook delivery as Telegram does it: once setWebhook names a URL, every queued update is
POSTed there as JSON with the `X-Telegram-Bot-Api-Secret-Token` header.

An update leaves the queue only when its POST is answered 2xx. A non-2xx answer, a timeout or a
refused or dropped connection leaves it queued and retries it later, the wait doubling from
`retry_seconds` up to `max_retry_seconds` (Telegram backs off too). At most `max_connections`
POSTs are in flight at once, in the order the updates arrived. getWebhookInfo reports the last
error, as Telegram's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.params import Params, get_integer, get_string
from bot.sandbox.emulator.updates import UpdateQueue

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_MAX_CONNECTIONS = 40  # Telegram's default for setWebhook's max_connections


def webhook_settings(params: Params) -> dict[str, Any]:
    """setWebhook's url, secret_token and max_connections, checked as Telegram checks them."""
    url = get_string(params, "url") or ""
    secret = get_string(params, "secret_token")
    if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise ApiError(400, "Bad Request: secret token contains unallowed characters")
    max_connections = get_integer(params, "max_connections", DEFAULT_MAX_CONNECTIONS)
    if not 1 <= max_connections <= 100:
        raise ApiError(400, "Bad Request: max_connections must be between 1 and 100")
    if url and not re.match(r"^https?://[^/\s]+", url):
        raise ApiError(400, "Bad Request: invalid webhook URL specified")
    return {"url": url, "secret_token": secret, "max_connections": max_connections}


@dataclass(frozen=True)
class DeliveryOptions:
    """How long a POST may take, and the first and longest wait before a retry (seconds)."""

    timeout: float = 10.0
    retry_seconds: float = 0.5
    max_retry_seconds: float = 8.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.retry_seconds <= 0:
            raise ValueError("the webhook timeout and retry wait must be positive")
        if self.max_retry_seconds < self.retry_seconds:
            raise ValueError("max_retry_seconds must be at least retry_seconds")


@dataclass
class DeliveryStats:
    """What the delivery did so far (tests and benches read it)."""

    posts: int = 0  # POSTs sent, retries included
    delivered: int = 0  # updates answered 2xx
    failures: int = 0  # POSTs answered non-2xx, timed out or refused
    most_at_once: int = 0  # the most POSTs in flight at the same time
    last_error_date: int | None = None
    last_error_message: str | None = None
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> POSTs answered so


class WebhookDelivery:
    """Posts the updates of `queue` to `url`; `start()` once, `wake()` on each new update."""

    def __init__(
        self,
        queue: UpdateQueue,
        url: str,
        secret_token: str | None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        options: DeliveryOptions | None = None,
    ) -> None:
        if not 1 <= max_connections <= 100:
            raise ValueError(f"max_connections must be 1-100, got {max_connections}")
        options = options or DeliveryOptions()
        self.queue = queue
        self.url = url
        self.secret_token = secret_token
        self.max_connections = max_connections
        self.timeout = options.timeout
        self.retry_seconds = options.retry_seconds
        self.max_retry_seconds = options.max_retry_seconds
        self.stats = DeliveryStats()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._failed: dict[int, int] = {}  # update_id -> failed attempts so far
        self._not_before: dict[int, float] = {}  # update_id -> when it may be posted again
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def info(self) -> dict[str, Any]:
        """The getWebhookInfo fields of this webhook."""
        info: dict[str, Any] = {"url": self.url, "max_connections": self.max_connections}
        if self.stats.last_error_date is not None:
            info["last_error_date"] = self.stats.last_error_date
            info["last_error_message"] = self.stats.last_error_message
        return info

    def start(self) -> None:
        """Begin delivering (in the running event loop)."""
        if self._task is not None:
            raise ValueError("webhook delivery already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhook-delivery")

    def wake(self) -> None:
        """Look at the queue again now (a new update, or a POST finished)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop delivering; POSTs in flight are abandoned (their updates stay queued)."""
        if self._task is None:
            return
        self._task.cancel()
        in_flight = list(self._in_flight.values())
        for task in in_flight:
            task.cancel()
        for waited in (self._task, *in_flight):
            with contextlib.suppress(asyncio.CancelledError):
                await waited
        self._task = None

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_connections)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self._session = session
            try:
                while True:
                    self._wake.clear()
                    delay = self._start_due()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
            finally:
                self._session = None

    def _start_due(self) -> float | None:
        """Start POSTs for the oldest updates that may go now; the seconds until the next retry
        falls due (None: nothing waits for a retry)."""
        now = time.monotonic()
        next_due: float | None = None
        for update in self.queue.oldest(skip=self._in_flight.keys()):
            if len(self._in_flight) >= self.max_connections:
                break
            update_id = int(update["update_id"])
            not_before = self._not_before.get(update_id, 0.0)
            if not_before > now:
                wait = not_before - now
                next_due = wait if next_due is None else min(next_due, wait)
                continue
            self._in_flight[update_id] = asyncio.get_running_loop().create_task(
                self._post(update_id, update)
            )
            self.stats.most_at_once = max(self.stats.most_at_once, len(self._in_flight))
        return next_due

    async def _post(self, update_id: int, update: dict[str, Any]) -> None:
        headers = {SECRET_HEADER: self.secret_token} if self.secret_token else {}
        self.stats.posts += 1
        error: str | None = None
        try:
            if self._session is None:
                raise ValueError("webhook delivery is not running")
            async with self._session.post(self.url, json=update, headers=headers) as response:
                await response.read()
                self.stats.statuses[response.status] = (
                    self.stats.statuses.get(response.status, 0) + 1
                )
                if not 200 <= response.status < 300:
                    error = f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            error = "Read timeout expired"
        except aiohttp.ClientError as failure:
            error = f"Connection failed: {failure.__class__.__name__}"
        finally:
            self._in_flight.pop(update_id, None)
        if error is None:
            self.queue.remove(update_id)
            self._failed.pop(update_id, None)
            self._not_before.pop(update_id, None)
            self.stats.delivered += 1
        else:
            attempts = self._failed.get(update_id, 0) + 1
            self._failed[update_id] = attempts
            wait = min(self.retry_seconds * 2 ** (attempts - 1), self.max_retry_seconds)
            self._not_before[update_id] = time.monotonic() + wait
            self.stats.failures += 1
            self.stats.last_error_date = int(time.time())
            self.stats.last_error_message = error
        self.wake()
