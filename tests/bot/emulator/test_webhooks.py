"""The emulator's webhook delivery (bot/sandbox/emulator/webhooks.py): what Telegram does once a
bot calls setWebhook, against a plain aiohttp receiver on 127.0.0.1 that can fail on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import telegram
from aiohttp import web
from telegram.error import Conflict

from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.emulator.webhooks import SECRET_HEADER

TOKEN = "123456:TEST-TOKEN"
ANN = 1001


@dataclass
class Receiver:
    """A webhook endpoint: records each POST; `answer(update)` says its status (or sleeps)."""

    url: str = ""
    posts: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], Any] = lambda update: 200
    hold_seconds: float = 0.0  # each POST waits this long before answering
    at_once: int = 0
    most_at_once: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        update = await request.json()
        self.posts.append((update, request.headers.get(SECRET_HEADER)))
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            await asyncio.sleep(self.hold_seconds)
            status = self.answer(update)
            if isinstance(status, float):  # a delay past the emulator's timeout
                await asyncio.sleep(status)
                status = 200
            return web.Response(status=status, text="ok")
        finally:
            self.at_once -= 1

    def ids(self) -> list[int]:
        return [update["update_id"] for update, _ in self.posts]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(token=TOKEN, webhook_timeout=0.5, webhook_retry_seconds=0.05)
    await emulator.start()
    emulator.add_user(ANN, "Ann", "ann")
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[telegram.Bot]:
    bot = telegram.Bot(TOKEN, base_url=f"{emulator.url}/bot")
    async with bot:
        yield bot


async def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met in time")


def failures(emulator: BotApiEmulator) -> int:
    stats = emulator.webhook_stats
    return 0 if stats is None else stats.failures


async def test_each_update_is_posted_as_json_with_the_secret_header(
    emulator: BotApiEmulator, bot: telegram.Bot, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="s3cret", max_connections=5)
    sent = [emulator.send_text(ANN, ANN, f"hello {index}") for index in range(3)]
    await wait_until(lambda: len(receiver.posts) == 3)
    assert sorted(receiver.ids()) == [1, 2, 3]
    texts = sorted(update["message"]["text"] for update, _ in receiver.posts)
    assert texts == sorted(message["text"] for message in sent)
    assert {secret for _, secret in receiver.posts} == {"s3cret"}
    await wait_until(lambda: emulator.pending_updates() == [])  # answered 200: delivered
    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.max_connections == 5
    assert info.pending_update_count == 0 and info.last_error_message is None


async def test_non_2xx_answers_and_timeouts_are_retried_until_accepted(
    emulator: BotApiEmulator, bot: telegram.Bot, receiver: Receiver
) -> None:
    answers = iter([500, 0.8, 404])  # then 200 for good; 0.8 s is past the 0.5 s timeout
    receiver.answer = lambda update: next(answers, 200)
    await bot.set_webhook(receiver.url, secret_token="s3cret")
    emulator.send_text(ANN, ANN, "persistent")
    await wait_until(lambda: emulator.pending_updates() == [])
    assert receiver.ids() == [1, 1, 1, 1]  # one update, posted four times
    stats = emulator.webhook_stats
    assert stats is not None and stats.failures == 3 and stats.delivered == 1
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 404 Not Found"


async def test_an_unreachable_webhook_keeps_the_updates_queued(
    emulator: BotApiEmulator, bot: telegram.Bot, receiver: Receiver
) -> None:
    await bot.set_webhook("http://127.0.0.1:9/hook")  # nothing listens there: refused
    emulator.send_text(ANN, ANN, "kept")
    await wait_until(lambda: emulator.webhook_stats is not None and failures(emulator) >= 2)
    assert [update["message"]["text"] for update in emulator.pending_updates()] == ["kept"]
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1 and (info.last_error_message or "").startswith(
        "Connection failed"
    )
    await bot.set_webhook(receiver.url)  # the bot comes back: the update arrives
    await wait_until(lambda: receiver.ids() == [1])


async def test_at_most_max_connections_posts_are_in_flight(
    emulator: BotApiEmulator, bot: telegram.Bot, receiver: Receiver
) -> None:
    receiver.hold_seconds = 0.1
    await bot.set_webhook(receiver.url, max_connections=3)
    for index in range(12):
        emulator.send_text(ANN, ANN, f"burst {index}")
    await wait_until(lambda: len(receiver.posts) == 12)
    assert receiver.most_at_once == 3  # never more, and the limit was used


async def test_get_updates_is_refused_while_a_webhook_is_set_and_delete_stops_delivery(
    emulator: BotApiEmulator, bot: telegram.Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url)
    with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook()
    emulator.send_text(ANN, ANN, "after delete")
    await asyncio.sleep(0.2)
    assert receiver.posts == []
    (update,) = await bot.get_updates(timeout=0)
    assert update.message.text == "after delete"


async def test_set_webhook_refuses_bad_parameters(bot: telegram.Bot) -> None:
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)max_connections"):
        await bot.set_webhook("http://127.0.0.1:1/hook", max_connections=101)
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)secret token"):
        await bot.set_webhook("http://127.0.0.1:1/hook", secret_token="not allowed!")
