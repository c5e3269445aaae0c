"""Access: who may run admin commands, edits that would turn an old message into a command, and
the bot token, which must never reach a log record or anything the bot sends."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import pytest
from telegram import Update

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.conftest import (
    ADMIN_ID,
    BOT_USERNAME,
    GROUP_ID,
    OPEN_GROUP_ID,
    TOKEN,
    USER_ID,
)
from tests.bot.test_bot_e2e import calls_named, replies_to, settle
from tests.conftest import digit_photo

ADMIN_ONLY = "Sorry, this command is for the bot's admins only."
ADMIN_COMMANDS = [
    "/stats",
    f"/stats@{BOT_USERNAME}",
    "/retrain",
    f"/retrain@{BOT_USERNAME} 2",
    "/retrain 1",
    f"/STATS@{BOT_USERNAME.upper()}",
]


async def test_non_admins_cannot_run_admin_commands_anywhere(
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    bot = await start_bot()
    for chat_id in (USER_ID, GROUP_ID, OPEN_GROUP_ID):
        for command in ADMIN_COMMANDS:
            message = emulator.send_text(chat_id, USER_ID, command)
            reply = await emulator.wait_for_reply(chat_id, message["message_id"])
            assert reply["text"] == ADMIN_ONLY, (chat_id, command, reply["text"])
    assert bot.state.retrain is None
    assert not calls_named(emulator, "sendMediaGroup") and not calls_named(emulator, "sendPhoto")
    texts = [
        m.get("text", "")
        for chat in (USER_ID, GROUP_ID, OPEN_GROUP_ID)
        for m in emulator.messages(chat)
        if m["from"]["id"] == emulator.bot_id
    ]
    assert not any("Model" in text or "Retraining" in text for text in texts)


async def test_admin_commands_for_another_bot_are_ignored(
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    bot = await start_bot()
    for command in ("/stats@some_other_bot", "/retrain@some_other_bot 1"):
        message = emulator.send_text(OPEN_GROUP_ID, ADMIN_ID, command)
        await settle()
        assert not replies_to(emulator, OPEN_GROUP_ID, message["message_id"])
    assert bot.state.retrain is None


@pytest.mark.parametrize(
    ("user_chat", "admin_chat"),
    [(USER_ID, ADMIN_ID), (GROUP_ID, GROUP_ID), (OPEN_GROUP_ID, OPEN_GROUP_ID)],
)
async def test_editing_an_old_message_into_a_command_does_nothing(
    user_chat: int,
    admin_chat: int,
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    bot = await start_bot()
    old = emulator.send_text(user_chat, USER_ID, "nice bot")
    admin_old = emulator.send_text(admin_chat, ADMIN_ID, "hello everyone")
    await settle()

    def bot_messages() -> int:
        return len(
            [
                m
                for chat in {user_chat, admin_chat}
                for m in emulator.messages(chat)
                if m["from"]["id"] == emulator.bot_id
            ]
        )

    before = bot_messages()
    emulator.edit_text(user_chat, old["message_id"], "/stats")
    emulator.edit_text(admin_chat, admin_old["message_id"], "/retrain 1")  # even an admin's edit
    await settle(1.0)
    assert bot_messages() == before
    assert bot.state.retrain is None
    # Like Telegram, the emulator does not even deliver edits the bot did not ask for...
    assert not [u for u in emulator.pending_updates() if "edited_message" in u]


async def test_an_edit_that_reaches_the_bot_anyway_is_ignored(
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    # ...and if one arrives anyway (a webhook registered earlier with other allowed_updates),
    # no handler takes it.
    bot = await start_bot()
    for user_id in (USER_ID, ADMIN_ID):
        old = emulator.send_text(GROUP_ID, user_id, f"/start@{BOT_USERNAME}")
        await emulator.wait_for_reply(GROUP_ID, old["message_id"])
        edited = emulator.edit_text(GROUP_ID, old["message_id"], "/retrain 1")
        update = Update.de_json(
            {"update_id": 10_000 + user_id, "edited_message": edited}, bot.application.bot
        )
        calls_before = len(emulator.calls)
        await bot.application.process_update(update)
        await settle()
        sent = [name for name, _ in emulator.calls[calls_before:] if name != "getUpdates"]
        assert sent == [], sent
    assert bot.state.retrain is None


async def test_the_token_never_appears_in_any_log_record_or_anything_the_bot_sends(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every logger at DEBUG, including those an earlier `digitbot run` in this process quietened.
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "telegram", "apscheduler", "aiohttp", "bot", "core"):
        caplog.set_level(logging.DEBUG, logger=name)
    bot = await start_bot()
    photo = digit_photo(mnist.x_test[0])

    # Ordinary traffic: commands, a photo, documents good and bad, admin /stats with uploads.
    for chat_id, user_id, text in (
        (USER_ID, USER_ID, "/start"),
        (USER_ID, USER_ID, "/retrain"),
        (ADMIN_ID, ADMIN_ID, "/stats"),
        (USER_ID, USER_ID, "hi"),
    ):
        sent = emulator.send_text(chat_id, user_id, text)
        await emulator.wait_for_reply(chat_id, sent["message_id"])
    answered = [
        emulator.send_photo(USER_ID, USER_ID, photo),
        emulator.send_document(USER_ID, USER_ID, b"junk", file_name="x.png", mime_type="image/png"),
        emulator.send_document(
            USER_ID, USER_ID, b"notes", file_name="n.txt", mime_type="text/plain"
        ),
    ]
    for message in answered:
        await emulator.wait_for_reply(USER_ID, message["message_id"])

    # Faults: polling fails, requests fail and are retried, a connection is dropped.
    emulator.inject_faults(1, "500", methods={"getUpdates"})
    await settle(1.2)
    emulator.inject_faults(2, "500", methods={"sendMessage"})
    emulator.inject_faults(1, "drop", methods={"getFile"})
    faulty = emulator.send_photo(USER_ID, USER_ID, photo)
    await emulator.wait_for_reply(USER_ID, faulty["message_id"], timeout=30)

    # An unexpected error whose message carries the token (as an HTTP library's might).
    async def leaky(*arguments: Any, **options: Any) -> None:
        raise RuntimeError(f"POST {emulator.url}/bot{TOKEN}/getFile failed")

    monkeypatch.setattr(bot.state, "classify", leaky)
    broken = emulator.send_photo(USER_ID, USER_ID, photo)
    reply = await emulator.wait_for_reply(USER_ID, broken["message_id"])
    assert "something went wrong" in reply["text"]

    # Stop the bot inside the test, so that its shutdown is logged and scanned as well.
    application = bot.application
    await application.updater.stop()
    await application.stop()
    await application.post_stop(application)
    await application.shutdown()

    secrets = [TOKEN, quote(TOKEN, safe=""), TOKEN.split(":", 1)[1]]
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logged = [formatter.format(record) for record in caplog.records]
    assert len(logged) > 100, "DEBUG logging should have recorded the whole session"
    assert any(record.levelno >= logging.ERROR and record.exc_info for record in caplog.records), (
        "the session should include logged tracebacks"
    )
    for text in logged:
        for secret in secrets:
            assert secret not in text, text
    assert any("<redacted>" in text for text in logged), "the token would have been logged"
    assert any("getFile failed" in text and "<redacted>" in text for text in logged)

    bot_messages = [
        m
        for chat in (USER_ID, ADMIN_ID)
        for m in emulator.messages(chat)
        if m["from"]["id"] == emulator.bot_id
    ]
    assert len(bot_messages) >= 9
    sent_params = json.dumps([params for _, params in emulator.calls], default=str)
    for secret in secrets:
        assert secret not in json.dumps(bot_messages)
        assert secret not in sent_params


async def test_the_flood_limit_is_per_user_across_private_chats_and_groups(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    # (test_bot_e2e checks the limit in a private chat, its single warning and its reset.)
    await start_bot(flood_limit=3, flood_window_seconds=30.0)
    photo = digit_photo(mnist.x_test[0])
    sent = [
        emulator.send_photo(USER_ID, USER_ID, photo),
        emulator.send_photo(USER_ID, USER_ID, photo),
        emulator.send_photo(GROUP_ID, USER_ID, photo, caption="/predict"),
        emulator.send_photo(GROUP_ID, USER_ID, photo, caption=f"@{BOT_USERNAME}"),
        emulator.send_photo(GROUP_ID, USER_ID, photo, caption="/predict"),
    ]
    other = emulator.send_photo(GROUP_ID, ADMIN_ID, photo, caption="/predict")
    reply = await emulator.wait_for_reply(GROUP_ID, other["message_id"])
    assert reply["text"].splitlines()[0] == str(mnist.y_test[0])  # others are not limited
    await emulator.wait_for(lambda m: "faster than I read them" in m.get("text", ""))
    await settle(0.5)
    texts = [
        m["text"] for s in sent for m in replies_to(emulator, s["chat"]["id"], s["message_id"])
    ]
    assert len(texts) == 4  # three answers and one warning; the fifth photo is dropped quietly
    assert sum("faster than I read them" in text for text in texts) == 1
