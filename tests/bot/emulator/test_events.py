"""Callback queries, the wait_for helpers and the event stream of the emulator."""

from __future__ import annotations

import asyncio

import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.error import BadRequest

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, BEN


async def test_callback_query_round_trip(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Right", callback_data="ok:7"),
                InlineKeyboardButton("Wrong", callback_data="no:7"),
            ]
        ]
    )
    sent = await bot.send_message(ANN, "It's a 7", reply_markup=keyboard)
    pressed = emulator.press_button(ANN, sent.message_id, ANN, "no:7")
    update = (await bot.get_updates(timeout=0))[-1]
    query = update.callback_query
    assert query.id == pressed["id"]
    assert query.data == "no:7"
    assert query.from_user.id == ANN
    assert query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="Thanks!") is True
    answer = await emulator.wait_for_callback_answer(query.id, timeout=1)
    assert answer["text"] == "Thanks!"
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(ValueError, match="no button"):
        emulator.press_button(ANN, sent.message_id, ANN, "maybe")


async def test_callback_data_longer_than_64_bytes_is_refused(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(ANN, "too much data", reply_markup=keyboard)


async def test_wait_for_reply_and_wait_for(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    question = emulator.send_text(ANN, ANN, "photo coming")

    async def answer_later() -> None:
        await asyncio.sleep(0.1)
        await bot.send_message(ANN, "unrelated")
        await bot.send_message(
            ANN, "got it", reply_parameters=ReplyParameters(question["message_id"])
        )

    task = asyncio.create_task(answer_later())
    reply = await emulator.wait_for_reply(ANN, question["message_id"], timeout=2)
    await task
    assert reply["text"] == "got it"
    found = await emulator.wait_for(lambda message: message.get("text") == "unrelated", timeout=1)
    assert [message["text"] for message in found] == ["unrelated"]
    with pytest.raises(TimeoutError, match="did not reply"):
        await emulator.wait_for_reply(ANN, reply["message_id"], timeout=0.2)


async def test_subscribe_sees_changes(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    events = emulator.subscribe()
    sent = emulator.send_text(ANN, ANN, "hi")
    reply = await bot.send_message(ANN, "hello")
    await bot.send_chat_action(ANN, "typing")
    await bot.edit_message_text("hello!", chat_id=ANN, message_id=reply.message_id)
    received = [events.get_nowait() for _ in range(events.qsize())]
    assert [event["type"] for event in received] == [
        "new_message",
        "new_message",
        "chat_action",
        "edited_message",
    ]
    assert received[0]["message"]["message_id"] == sent["message_id"]
    assert received[3]["message"]["text"] == "hello!"
    emulator.unsubscribe(events)
    emulator.send_text(ANN, ANN, "unseen")
    assert events.empty()
    assert [chat["id"] for chat in emulator.chats()] == [ANN, BEN]
