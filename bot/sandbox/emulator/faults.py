"""Fault injection: the next bot-side requests fail as 500, a timeout, a drop or a 429."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from bot.sandbox.emulator.errors import ApiError, error_response

FAULT_KINDS = ("500", "timeout", "drop", "429")


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: int
    hold_seconds: float
    methods: frozenset[str] | None  # lower-case method names, None for any


class FaultPlan:
    """The injected faults not yet met, oldest first (`BotApiEmulator.inject_faults`)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def __len__(self) -> int:
        return len(self._faults)

    def inject(
        self,
        count: int,
        kind: str,
        *,
        retry_after: int,
        hold_seconds: float,
        methods: Iterable[str] | None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        if retry_after < 1:
            raise ValueError(f"retry_after must be at least 1 second, got {retry_after}")
        if hold_seconds < 0:
            raise ValueError(f"hold_seconds must not be negative, got {hold_seconds}")
        names = None if methods is None else frozenset(name.lower() for name in methods)
        fault = Fault(kind=kind, retry_after=retry_after, hold_seconds=hold_seconds, methods=names)
        self._faults.extend([fault] * count)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str) -> Fault | None:
        """The first fault meant for `method`, removed from the plan; None if there is none."""
        for index, fault in enumerate(self._faults):
            if fault.methods is None or method.lower() in fault.methods:
                return self._faults.pop(index)
        return None


async def fault_response(
    request: web.Request, fault: Fault, stopping: asyncio.Event
) -> web.StreamResponse:
    """What the request gets instead of its answer (a "timeout" ends early once `stopping`)."""
    if fault.kind == "500":
        return error_response(ApiError(500, "Internal Server Error"))
    if fault.kind == "429":
        return error_response(
            ApiError(
                429,
                f"Too Many Requests: retry after {fault.retry_after}",
                {"retry_after": fault.retry_after},
            )
        )
    if fault.kind == "timeout":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), fault.hold_seconds)
        return error_response(ApiError(502, "Bad Gateway"))
    # "drop": abort the connection; aiohttp then writes nothing for this response.
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)
