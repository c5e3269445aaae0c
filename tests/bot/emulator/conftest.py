"""Fixtures of the emulator's own tests: an emulator with two users (Ann and Ben), a PTB Bot
pointed at it, a plain HTTP client, and `call` for raw Bot API requests.

The tests talk to it over raw HTTP (aiohttp) and through a real PTB v22 Bot.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from PIL import Image

from bot.sandbox.emulator import BotApiEmulator

TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "digitbot_test_bot"
ANN = 1001
BEN = 1002
GROUP = -100123


def png_bytes(width: int, height: int, color: str = "white") -> bytes:
    """A PNG image of the given size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """A started emulator with two users, Ann and Ben."""
    emulator = BotApiEmulator(token=TOKEN, bot_username=BOT_USERNAME)
    await emulator.start()
    emulator.add_user(ANN, "Ann", "ann")
    emulator.add_user(BEN, "Ben")
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[telegram.Bot]:
    """A PTB Bot pointed at the emulator the way the application points it at TELEGRAM_API_URL."""
    bot = telegram.Bot(
        TOKEN, base_url=f"{emulator.url}/bot", base_file_url=f"{emulator.url}/file/bot"
    )
    async with bot:
        yield bot


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, emulator: BotApiEmulator, method: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    """POST a JSON Bot API call; returns the HTTP status and the decoded body."""
    async with http.post(f"{emulator.url}/bot{TOKEN}/{method}", json=params) as response:
        return response.status, await response.json()
