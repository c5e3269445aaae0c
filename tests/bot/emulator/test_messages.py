"""Messages in the emulator: replies, edits, deletes, parse modes, chat queries, commands."""

from __future__ import annotations

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.error import BadRequest

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, BEN, GROUP, TOKEN, call


async def test_send_message_as_reply(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    question = emulator.send_text(ANN, ANN, "what digit?")
    reply = await bot.send_message(
        ANN, "7", reply_parameters=ReplyParameters(message_id=question["message_id"])
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == question["message_id"]
    assert reply.reply_to_message.text == "what digit?"
    assert emulator.messages(ANN)[-1]["reply_to_message"]["message_id"] == question["message_id"]


async def test_reply_to_message_id_and_missing_reply_target(
    emulator: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    question = emulator.send_text(ANN, ANN, "hi")
    form = {
        "chat_id": str(ANN),
        "text": "old style",
        "reply_to_message_id": str(question["message_id"]),
    }
    async with http.post(f"{emulator.url}/bot{TOKEN}/sendMessage", data=form) as response:
        result = (await response.json())["result"]
    assert result["reply_to_message"]["message_id"] == question["message_id"]
    status, body = await call(
        http, emulator, "sendMessage", chat_id=ANN, text="x", reply_parameters={"message_id": 999}
    )
    assert (status, body["description"]) == (400, "Bad Request: message to be replied not found")
    status, body = await call(
        http,
        emulator,
        "sendMessage",
        chat_id=ANN,
        text="x",
        reply_parameters={"message_id": 999, "allow_sending_without_reply": True},
    )
    assert status == 200
    assert "reply_to_message" not in body["result"]


async def test_edit_message_text_and_not_modified(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    sent = await bot.send_message(ANN, "thinking…")
    assert sent.edit_date is None
    edited = await bot.edit_message_text("7", chat_id=ANN, message_id=sent.message_id)
    assert edited.text == "7"
    assert edited.edit_date is not None
    assert emulator.messages(ANN)[-1]["text"] == "7"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("7", chat_id=ANN, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("8", chat_id=ANN, message_id=9999)
    user_message = emulator.send_text(ANN, ANN, "mine")
    with pytest.raises(BadRequest, match="can't be edited"):
        await bot.edit_message_text("x", chat_id=ANN, message_id=user_message["message_id"])


async def test_edit_reply_markup_and_delete(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("✓", callback_data="yes")]])
    sent = await bot.send_message(ANN, "right?", reply_markup=keyboard)
    cleared = await bot.edit_message_reply_markup(chat_id=ANN, message_id=sent.message_id)
    assert cleared.reply_markup is None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(chat_id=ANN, message_id=sent.message_id)
    assert await bot.delete_message(ANN, sent.message_id) is True
    assert sent.message_id not in [message["message_id"] for message in emulator.messages(ANN)]
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(ANN, sent.message_id)


async def test_user_edit_gives_edited_message_update(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    sent = emulator.send_text(ANN, ANN, "/predict")
    emulator.edit_text(ANN, sent["message_id"], "/help")
    updates = await bot.get_updates(timeout=0)
    assert updates[-1].edited_message.text == "/help"
    assert updates[-1].edited_message.edit_date is not None


async def test_parse_mode_errors_are_400(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(ANN, "1 < 2 <b>bold", parse_mode="HTML")
    with pytest.raises(BadRequest, match="reserved and must be escaped"):
        await bot.send_message(ANN, "Accuracy 99.1%", parse_mode="MarkdownV2")
    sent = await bot.send_message(ANN, "Accuracy *99\\.1%*", parse_mode="MarkdownV2")
    assert sent.text == "Accuracy 99.1%"
    assert sent.entities[0].type == "bold"


async def test_chat_queries_and_commands(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    emulator.add_group(GROUP, "Demo", bot_is_admin=True, admin_user_ids=[ANN])
    chat = await bot.get_chat(GROUP)
    assert (chat.type, chat.title) == ("supergroup", "Demo")
    member = await bot.get_chat_member(GROUP, bot.id)
    assert member.status == "administrator"
    admins = await bot.get_chat_administrators(GROUP)
    assert sorted(admin.user.id for admin in admins) == [ANN, bot.id]
    assert (await bot.get_chat_member(GROUP, BEN)).status == "left"
    assert await bot.set_my_commands([("start", "Start"), ("predict", "Read a digit")]) is True
    assert [command.command for command in await bot.get_my_commands()] == ["start", "predict"]
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Not Valid", "x")])
