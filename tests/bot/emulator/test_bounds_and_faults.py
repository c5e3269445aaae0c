"""The emulator's bounds (oldest dropped) and its injected faults (500, timeout, drop, 429)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import telegram
from telegram.error import NetworkError, RetryAfter, TimedOut

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, TOKEN, call

# --- bounds ----------------------------------------------------------------------------------


async def test_bounds_drop_the_oldest() -> None:
    emulator = BotApiEmulator(max_messages_per_chat=3, max_pending_updates=2, max_file_bytes=60_000)
    url = await emulator.start()
    try:
        emulator.add_user(ANN, "Ann")
        for number in range(5):
            emulator.send_text(ANN, ANN, f"message {number}")
        assert [m["text"] for m in emulator.messages(ANN)] == [
            "message 2",
            "message 3",
            "message 4",
        ]
        assert [u["message"]["text"] for u in emulator.pending_updates()] == [
            "message 3",
            "message 4",
        ]
        first = emulator.send_document(ANN, ANN, b"a" * 40_000, file_name="a.bin")
        second = emulator.send_document(ANN, ANN, b"b" * 40_000, file_name="b.bin")
        with pytest.raises(ValueError, match="unknown or dropped"):
            emulator.file_bytes(first["document"]["file_id"])
        assert emulator.file_bytes(second["document"]["file_id"]) == b"b" * 40_000
        async with aiohttp.ClientSession() as http:
            form = {"file_id": first["document"]["file_id"]}
            async with http.post(f"{url}/bot{TOKEN}/getFile", data=form) as response:
                assert response.status == 400
    finally:
        await emulator.stop()


# --- faults ----------------------------------------------------------------------------------


# PTB itself warns about its RetryAfter.retry_after type change when building the error.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.parametrize(
    ("kind", "error"),
    [("500", NetworkError), ("timeout", TimedOut), ("drop", NetworkError), ("429", RetryAfter)],
)
async def test_injected_faults_then_the_next_call_works(
    emulator: BotApiEmulator, bot: telegram.Bot, kind: str, error: type[Exception]
) -> None:
    emulator.inject_faults(1, kind, hold_seconds=1.5, retry_after=3)
    started = time.monotonic()
    with pytest.raises(error) as raised:
        await bot.send_message(ANN, "first try", read_timeout=0.3)
    assert time.monotonic() - started < 1.4  # the client gave up before the hold ended
    if kind == "429":
        assert "Retry in 3 seconds" in str(raised.value)
    retried = await bot.send_message(ANN, "second try", read_timeout=0.3)
    assert retried.text == "second try"
    assert [m["text"] for m in emulator.messages(ANN)] == ["second try"]


async def test_raw_fault_replies(emulator: BotApiEmulator, http: aiohttp.ClientSession) -> None:
    emulator.inject_faults(1, "500")
    emulator.inject_faults(1, "429", retry_after=5)
    status, body = await call(http, emulator, "getMe")
    assert (status, body["description"]) == (500, "Internal Server Error")
    status, body = await call(http, emulator, "getMe")
    assert status == 429
    assert body["parameters"] == {"retry_after": 5}
    emulator.inject_faults(1, "drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, emulator, "getMe")
    emulator.inject_faults(1, "timeout", hold_seconds=1.0)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{emulator.url}/bot{TOKEN}/getMe", timeout=aiohttp.ClientTimeout(total=0.2)
        ) as response:
            await response.read()
    status, _ = await call(http, emulator, "getMe")
    assert status == 200


async def test_faults_can_target_methods(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    emulator.inject_faults(2, "500", methods={"sendMessage"})
    assert await bot.get_updates(timeout=0) == ()  # not consumed by polling
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(ANN, "x")
    assert (await bot.send_message(ANN, "ok")).text == "ok"
    with pytest.raises(ValueError, match="fault kind"):
        emulator.inject_faults(1, "503")
