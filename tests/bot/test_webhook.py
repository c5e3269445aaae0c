"""Webhook mode (bot/transport/webhook.py): only requests that carry the secret token reach the bot.

Telegram is replaced by the emulator for the bot's own calls. The emulator delivers updates to the
webhook itself, as Telegram does; the tests of the secret check switch that off
(`deliver_webhooks = False`) and post updates by hand, with and without the
`X-Telegram-Bot-Api-Secret-Token` header, as an attacker would.
"""

from __future__ import annotations

import asyncio
import hmac
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.heartbeat import heartbeat_problem
from bot.sandbox.emulator import BotApiEmulator
from bot.transport import webhook
from tests.bot.conftest import (
    ADMIN_ID,
    TOKEN,
    USER_ID,
    RunningBot,
    environment_without,
    spawn_digitbot,
    started_url,
)
from tests.bot.test_bot_e2e import answered_digit, free_port, replies_to, settle
from tests.conftest import digit_photo


def registered(emulator: BotApiEmulator) -> dict[str, Any]:
    """What the bot gave to the emulator's setWebhook."""
    assert emulator.webhook is not None, "setWebhook was not called"
    return emulator.webhook


async def start_webhook_bot(start_bot: Any, **overrides: Any) -> tuple[str, RunningBot]:
    """A bot in webhook mode on a free port; the URL Telegram would post to, and the bot."""
    port = free_port()
    running = await start_bot(
        webhook=True,
        webhook_url=f"http://127.0.0.1:{port}/digitbot/hook",
        webhook_listen="127.0.0.1",
        webhook_port=port,
        **overrides,
    )
    return f"http://127.0.0.1:{port}/digitbot/hook", running


async def test_the_emulator_delivers_updates_to_the_webhook_and_each_is_answered_once(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    url, _ = await start_webhook_bot(start_bot, webhook_secret_token="s3cret-Token")
    assert registered(emulator)["url"] == url
    photos = [
        emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[index]))
        for index in range(3)
    ]
    for index, photo in enumerate(photos):
        reply = await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=30)
        assert answered_digit(reply) == str(int(mnist.y_test[index]))
    await settle()
    for photo in photos:
        assert len(replies_to(emulator, USER_ID, photo["message_id"])) == 1
    stats = emulator.webhook_stats
    assert stats is not None and stats.delivered == 3 and stats.failures == 0
    assert emulator.pending_updates() == []


async def test_webhook_mode_answers_updates_posted_with_the_secret_token(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    emulator.deliver_webhooks = False  # this test posts the update itself
    url, _ = await start_webhook_bot(start_bot, webhook_secret_token="s3cret-Token")
    assert registered(emulator)["secret_token"] == "s3cret-Token"
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    update = {"update_id": 1, "message": photo}  # what Telegram would post
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=update) as response:
            assert response.status == 403  # no secret token: refused
        headers = {webhook.SECRET_HEADER: "s3cret-Token"}
        async with session.post(url, json=update, headers=headers) as response:
            assert response.status == 200
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"])
    assert answered_digit(reply) == str(int(mnist.y_test[0]))
    await settle()
    assert len(replies_to(emulator, USER_ID, photo["message_id"])) == 1


async def test_without_a_configured_secret_a_strong_one_is_generated_and_required(
    start_bot: Any, emulator: BotApiEmulator
) -> None:
    emulator.deliver_webhooks = False  # this test posts the updates itself
    url, _ = await start_webhook_bot(start_bot, webhook_secret_token=None)
    secret = registered(emulator)["secret_token"]
    assert isinstance(secret, str) and len(secret) >= 32
    # A forged admin /stats, the attack of issue 17: refused without the secret.
    stats = emulator.send_text(ADMIN_ID, ADMIN_ID, "/stats")
    forged = {"update_id": 7, "message": stats}
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {webhook.SECRET_HEADER: "guess"}, {webhook.SECRET_HEADER: ""}):
            async with session.post(url, json=forged, headers=headers) as response:
                assert response.status == 403
        await settle()
        assert replies_to(emulator, ADMIN_ID, stats["message_id"]) == []
        async with session.post(
            url, json=forged, headers={webhook.SECRET_HEADER: secret}
        ) as response:
            assert response.status == 200
    reply = await emulator.wait_for_reply(ADMIN_ID, stats["message_id"])
    assert reply["text"]


async def test_the_secret_is_checked_in_constant_time_before_the_body_is_read(
    start_bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module bot.transport.webhook uses
    url, _ = await start_webhook_bot(start_bot, webhook_secret_token="s3cret-Token")
    async with aiohttp.ClientSession() as session:
        # Not JSON at all: with the wrong secret the answer is 403, never a parse error (400).
        headers = {webhook.SECRET_HEADER: "wrong", "Content-Type": "application/json"}
        async with session.post(url, data=b"{not json", headers=headers) as response:
            assert response.status == 403
        headers[webhook.SECRET_HEADER] = "s3cret-Token"
        async with session.post(url, data=b"{not json", headers=headers) as response:
            assert response.status == 400
        # A body far beyond any update is refused, not buffered.
        async with session.post(
            url, data=b"x" * (2 * webhook.MAX_UPDATE_BYTES), headers=headers
        ) as response:
            assert response.status == 413
    assert (b"wrong", b"s3cret-Token") in compared


async def test_the_heartbeat_is_written_in_webhook_mode(start_bot: Any) -> None:
    _, running = await start_webhook_bot(start_bot, webhook_secret_token="s3cret-Token")
    path = running.settings.heartbeat_file
    assert path is not None
    path.unlink(missing_ok=True)
    (job,) = running.application.job_queue.get_jobs_by_name("heartbeat")
    await job.run(running.application)
    assert heartbeat_problem(path) is None  # no updater polls, yet the bot is alive


def test_webhook_mode_without_a_url_is_one_clear_error() -> None:
    from bot.settings import Settings

    with pytest.raises(ValueError, match="WEBHOOK_URL"):
        webhook.webhook_config(Settings(_env_file=None, webhook_url=None))


async def test_digitbot_run_webhook_registers_a_secret_answers_and_stops_on_sigterm(
    emulator: BotApiEmulator, model_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    environment = environment_without(
        "TELEGRAM_",
        "WEBHOOK_",
        "ADMIN_",
        "LOG_",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=started_url(emulator),
        WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        WEBHOOK_LISTEN="127.0.0.1",
        WEBHOOK_PORT=str(port),
        MODEL_DIR=str(model_dir),
        DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="DEBUG",
    )
    process = await spawn_digitbot("run", "--webhook", cwd=tmp_path, env=environment)
    try:
        for _ in range(600):  # the model and workers start first
            if emulator.webhook is not None or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert emulator.webhook is not None, "the bot never called setWebhook"
        secret = emulator.webhook["secret_token"]
        assert emulator.webhook["url"] == f"http://127.0.0.1:{port}/hook" and len(secret) >= 32
        start = emulator.send_text(USER_ID, USER_ID, "/start")  # delivered with the secret
        reply = await emulator.wait_for_reply(USER_ID, start["message_id"], timeout=30)
        assert reply["text"].startswith("Hello, Bob!")
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    text = output.decode()
    assert secret not in text and TOKEN.split(":")[1] not in text
    assert "WEBHOOK_SECRET_TOKEN is not set: using a random one" in text
