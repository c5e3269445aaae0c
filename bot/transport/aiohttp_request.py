"""PTB's networking backend on aiohttp instead of httpx: the same requests, a fifth of the CPU.

python-telegram-bot sends every Bot API call through a `BaseRequest`; its own one (HTTPXRequest)
uses httpx, whose connection pool checks every open connection on every request (a socket
`getpeername` each time), so a request costs ~1 ms of CPU with 8 connections and ~7 ms with 64
(measured on this 2-core machine against the local emulator; aiohttp: 0.25 ms either way). Under
a burst of photos that is most of the event loop's time. aiohttp is already a dependency (the
emulator and the sandbox use it).

Timeouts map as in HTTPXRequest: connect (`sock_connect`), read (`sock_read`), pool (waiting for a
free connection, part of aiohttp's `connect`). aiohttp has no separate write timeout; a request
body is written within the connect + read budget instead.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT_SECONDS = 5.0  # PTB's defaults for connect, read and write
DEFAULT_POOL_TIMEOUT_SECONDS = 30.0


class AiohttpRequest(BaseRequest):
    """A `telegram.request.BaseRequest` on one aiohttp ClientSession with `connections`
    keep-alive connections."""

    def __init__(
        self,
        connections: int = 8,
        *,
        read_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT_SECONDS,
    ) -> None:
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections}")
        self.connections = connections
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (PTB adds the long-poll time to it for getUpdates)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (inside the running event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One HTTP request -> (status code, body); TimedOut / NetworkError when it fails."""
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_read=read,
            sock_connect=connect,
            connect=None if pool is None or connect is None else pool + connect,
        )
        try:
            data, headers = body(request_data)
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error


FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def body(request_data: RequestData | None) -> tuple[Any, dict[str, str] | None]:
    """(data, headers): form fields, or a multipart form when files are uploaded (as HTTPXRequest
    sends them). Fields are encoded here: aiohttp's FormData cost ~6 % of the event loop's
    time under a burst of photos."""
    if request_data is None:
        return None, None
    files = request_data.multipart_data
    if not files:
        return request_data.url_encoded_parameters().encode("ascii"), FORM_HEADERS
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (file_name, content, mime_type) in files.items():
        form.add_field(name, content, filename=file_name, content_type=mime_type)
    return form, None
