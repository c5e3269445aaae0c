"""getUpdates in the emulator: long polling, offsets, allowed updates, 409s, privacy mode."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import Conflict

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, BEN, BOT_USERNAME, GROUP, TOKEN, call, png_bytes

# --- getUpdates ------------------------------------------------------------------------------


async def test_long_poll_returns_as_soon_as_a_user_writes(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    assert not poll.done()
    sent = emulator.send_text(ANN, ANN, "/start")
    updates = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 1.5
    assert len(updates) == 1
    message = updates[0].message
    assert message.message_id == sent["message_id"]
    assert message.text == "/start"
    assert message.from_user.id == ANN
    assert message.chat.type == "private"
    assert message.entities[0].type == "bot_command"


async def test_offset_confirms_older_updates(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    emulator.send_text(ANN, ANN, "one")
    emulator.send_text(ANN, ANN, "two")
    first = await bot.get_updates(timeout=0)
    assert [update.message.text for update in first] == ["one", "two"]
    # Without a higher offset the same updates come again.
    assert len(await bot.get_updates(timeout=0)) == 2
    rest = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
    assert [update.message.text for update in rest] == ["two"]
    assert len(emulator.pending_updates()) == 1
    assert await bot.get_updates(offset=first[1].update_id + 1, timeout=0) == ()
    assert emulator.pending_updates() == []


async def test_get_updates_times_out_empty(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    started = time.monotonic()
    updates = await bot.get_updates(timeout=1)
    elapsed = time.monotonic() - started
    assert updates == ()
    assert 0.9 <= elapsed < 1.8


async def test_allowed_updates_filters_new_updates(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    sent = await bot.send_message(
        ANN,
        "pick",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]]),
    )
    await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    emulator.send_text(ANN, ANN, "not wanted")
    emulator.press_button(ANN, sent.message_id, ANN, "a")
    updates = await bot.get_updates(timeout=0)  # the setting persists when not given again
    assert [update.callback_query.data for update in updates] == ["a"]
    await bot.get_updates(timeout=0, allowed_updates=[])  # [] means the default set
    emulator.send_text(ANN, ANN, "wanted")
    texts = [u.message.text for u in await bot.get_updates(timeout=0) if u.message]
    assert texts == ["wanted"]


async def test_a_second_long_poll_terminates_the_first_with_409(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    # Two bot instances with the same token, as when a second copy of the bot starts.
    other = telegram.Bot(TOKEN, base_url=f"{emulator.url}/bot")
    async with other:
        first = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(other.get_updates(timeout=10))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 2)
        emulator.send_text(ANN, ANN, "still delivered")
        updates = await asyncio.wait_for(second, 2)
    assert updates[0].message.text == "still delivered"


async def test_raw_409_body(emulator: BotApiEmulator, http: aiohttp.ClientSession) -> None:
    first = asyncio.create_task(call(http, emulator, "getUpdates", timeout=5))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(call(http, emulator, "getUpdates", timeout=5))
    status, body = await asyncio.wait_for(first, 2)
    assert status == 409
    assert body["error_code"] == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")
    emulator.send_text(ANN, ANN, "hello")
    status, body = await asyncio.wait_for(second, 2)
    assert status == 200
    assert body["result"][0]["message"]["text"] == "hello"


async def test_delete_webhook_can_drop_pending_updates(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    emulator.send_text(ANN, ANN, "old")
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert await bot.get_updates(timeout=0) == ()


# --- privacy mode ----------------------------------------------------------------------------


async def test_privacy_mode_in_a_group(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    emulator.add_group(GROUP, "Demo", privacy=True, bot_is_admin=False)
    bot_message = await bot.send_message(GROUP, "send me a digit")
    photo = png_bytes(64, 64)
    delivered = [
        emulator.send_text(GROUP, ANN, "/predict"),
        emulator.send_text(GROUP, ANN, f"/predict@{BOT_USERNAME} now"),
        emulator.send_text(GROUP, ANN, f"hey @{BOT_USERNAME.upper()}"),
        emulator.send_text(GROUP, BEN, "it's 7", reply_to_message_id=bot_message.message_id),
        emulator.send_photo(GROUP, ANN, photo, caption="/predict"),
    ]
    ignored = [
        emulator.send_text(GROUP, ANN, "just chatting"),
        emulator.send_text(GROUP, ANN, "/predict@some_other_bot"),
        emulator.send_text(GROUP, ANN, "not a command: /predict"),
        emulator.send_photo(GROUP, BEN, photo),
        emulator.send_text(
            GROUP, BEN, "reply to Ann", reply_to_message_id=delivered[0]["message_id"]
        ),
    ]
    updates = await bot.get_updates(timeout=0)
    assert [update.message.message_id for update in updates] == [
        message["message_id"] for message in delivered
    ]
    # Everything is still in the chat, for the sandbox page.
    assert len(emulator.messages(GROUP)) == 1 + len(delivered) + len(ignored)


@pytest.mark.parametrize(
    ("options", "group_options"),
    [
        ({}, {"privacy": False}),
        ({}, {"bot_is_admin": True}),
        ({"can_read_all_group_messages": True}, {}),
    ],
)
async def test_group_without_privacy_delivers_everything(
    options: dict[str, Any], group_options: dict[str, Any]
) -> None:
    emulator = BotApiEmulator(**options)
    await emulator.start()
    try:
        emulator.add_user(ANN, "Ann")
        emulator.add_group(-500, "Plain group", **group_options)
        emulator.send_text(-500, ANN, "just chatting")
        emulator.send_photo(-500, ANN, png_bytes(32, 32))
        pending = emulator.pending_updates()
    finally:
        await emulator.stop()
    assert [update["message"]["chat"]["type"] for update in pending] == ["group", "group"]
