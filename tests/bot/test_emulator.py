"""Tests of the Bot API emulator, over raw HTTP (aiohttp) and through a real PTB v22 Bot."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from PIL import Image
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, ContextTypes, MessageHandler, filters

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


# --- getMe, tokens, unknown methods ----------------------------------------------------------


async def test_get_me_over_http_and_ptb(
    emulator: BotApiEmulator, http: aiohttp.ClientSession, bot: telegram.Bot
) -> None:
    status, body = await call(http, emulator, "getMe")
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["username"] == BOT_USERNAME
    assert body["result"]["is_bot"] is True
    assert body["result"]["can_read_all_group_messages"] is False
    assert body["result"]["can_join_groups"] is True
    assert body["result"]["supports_inline_queries"] is False
    me = await bot.get_me()
    assert me.id == 123456
    assert me.username == BOT_USERNAME


async def test_get_me_reports_constructor_options() -> None:
    emulator = BotApiEmulator(can_read_all_group_messages=True, supports_inline_queries=True)
    url = await emulator.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/bot{TOKEN}/getMe") as reply:
            result = (await reply.json())["result"]
    finally:
        await emulator.stop()
    assert result["can_read_all_group_messages"] is True
    assert result["supports_inline_queries"] is True


async def test_wrong_token_is_401_for_methods_and_downloads(
    emulator: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{emulator.url}/bot999:WRONG/getMe") as response:
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }
    async with http.get(f"{emulator.url}/file/bot999:WRONG/photos/file_1.jpg") as response:
        assert response.status == 401
    wrong = telegram.Bot("999:WRONG", base_url=f"{emulator.url}/bot")
    with pytest.raises(InvalidToken):
        await wrong.get_me()


async def test_unknown_method_is_404(emulator: BotApiEmulator, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, emulator, "sendTelepathy", chat_id=ANN)
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_method_names_are_case_insensitive_and_calls_are_recorded(
    emulator: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    status, _ = await call(http, emulator, "SENDMESSAGE", chat_id=str(ANN), text="hi")
    assert status == 200
    assert emulator.calls[-1] == ("sendMessage", {"chat_id": ANN, "text": "hi"})


# --- parameter encodings ---------------------------------------------------------------------


async def test_parameters_as_json_form_query_and_multipart(
    emulator: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    base = f"{emulator.url}/bot{TOKEN}/sendMessage"
    markup = {"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]}
    async with http.post(base, json={"chat_id": ANN, "text": "json", "reply_markup": markup}) as r:
        assert (await r.json())["result"]["reply_markup"] == markup
    form = {"chat_id": str(ANN), "text": "form", "reply_markup": json.dumps(markup)}
    async with http.post(base, data=form) as r:
        assert (await r.json())["result"]["reply_markup"] == markup
    async with http.get(base, params={"chat_id": str(ANN), "text": "query"}) as r:
        assert (await r.json())["result"]["text"] == "query"
    multipart = aiohttp.FormData()
    multipart.add_field("chat_id", str(ANN))
    multipart.add_field("text", "multipart")
    async with http.post(base, data=multipart) as r:
        assert (await r.json())["result"]["text"] == "multipart"
    assert [message["text"] for message in emulator.messages(ANN)] == [
        "json",
        "form",
        "query",
        "multipart",
    ]


async def test_missing_chat_and_missing_text_are_400(
    emulator: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, emulator, "sendMessage", text="hi")
    assert (status, body["description"]) == (400, "Bad Request: chat_id is empty")
    status, body = await call(http, emulator, "sendMessage", chat_id=4242, text="hi")
    assert (status, body["description"]) == (400, "Bad Request: chat not found")
    status, body = await call(http, emulator, "sendMessage", chat_id=ANN)
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")


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


# --- files -----------------------------------------------------------------------------------


async def test_user_photo_is_reencoded_into_photo_sizes(emulator: BotApiEmulator) -> None:
    message = emulator.send_photo(ANN, ANN, png_bytes(2000, 1000), caption="seven")
    sizes = [(size["width"], size["height"]) for size in message["photo"]]
    assert sizes == [(90, 45), (320, 160), (800, 400), (1280, 640)]
    for size in message["photo"]:
        data = emulator.file_bytes(size["file_id"])
        assert size["file_size"] == len(data)
        assert data[:3] == b"\xff\xd8\xff"  # JPEG, whatever was sent
    assert message["caption"] == "seven"
    small = emulator.send_photo(ANN, ANN, png_bytes(50, 40))
    assert [(size["width"], size["height"]) for size in small["photo"]] == [(50, 40)]
    with pytest.raises(ValueError, match="IMAGE_PROCESS_FAILED"):
        emulator.send_photo(ANN, ANN, b"not an image")


async def test_get_file_and_download_give_the_same_bytes(
    emulator: BotApiEmulator, bot: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    sent = emulator.send_photo(ANN, ANN, png_bytes(600, 400))
    update = (await bot.get_updates(timeout=0))[0]
    largest = update.message.photo[-1]
    file = await bot.get_file(largest.file_id)
    assert file.file_size == largest.file_size
    downloaded = bytes(await file.download_as_bytearray())
    assert downloaded == emulator.file_bytes(sent["photo"][-1]["file_id"])
    assert file.file_path.startswith(f"{emulator.url}/file/bot{TOKEN}/")
    assert emulator.calls[-1][0] == "download"
    async with http.get(f"{emulator.url}/file/bot{TOKEN}/photos/nothing.jpg") as response:
        assert response.status == 404


async def test_bad_file_id_is_400(
    emulator: BotApiEmulator, bot: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, emulator, "getFile", file_id="AgAC-nonsense")
    assert status == 400
    assert body == {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("AgAC-nonsense")
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_photo(ANN, "AgAC-nonsense")


async def test_bot_photo_upload_is_stored_and_reusable_by_file_id(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    sent = await bot.send_photo(
        ANN, png_bytes(1000, 500), caption="<b>curves</b>", parse_mode="HTML"
    )
    assert [(size.width, size.height) for size in sent.photo][-1] == (1000, 500)
    stored = emulator.messages(ANN)[-1]
    assert stored["from"]["id"] == 123456
    assert stored["caption"] == "curves"
    assert stored["caption_entities"] == [{"type": "bold", "offset": 0, "length": 6}]
    assert len(stored["photo"]) == 4
    again = await bot.send_photo(ANN, sent.photo[-1].file_id)
    assert [size.file_id for size in again.photo] == [size.file_id for size in sent.photo]
    file = await bot.get_file(sent.photo[0].file_id)
    assert len(await file.download_as_bytearray()) == sent.photo[0].file_size


async def test_send_media_group_with_attached_uploads(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    first = await bot.send_photo(ANN, png_bytes(100, 100))
    group = await bot.send_media_group(
        ANN,
        [
            InputMediaPhoto(png_bytes(200, 100), caption="upload"),
            InputMediaPhoto(first.photo[-1].file_id, caption="by id"),
        ],
    )
    assert len(group) == 2
    assert group[0].media_group_id == group[1].media_group_id is not None
    assert [message.caption for message in group] == ["upload", "by id"]
    assert (group[0].photo[-1].width, group[0].photo[-1].height) == (200, 100)


async def test_user_document_keeps_its_bytes(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    data = png_bytes(30, 30)
    sent = emulator.send_document(ANN, ANN, data, file_name="digit.png")
    document = sent["document"]
    assert (document["file_name"], document["mime_type"]) == ("digit.png", "image/png")
    assert document["file_size"] == len(data)
    assert "thumbnail" in document
    file = await bot.get_file(document["file_id"])
    assert bytes(await file.download_as_bytearray()) == data


# --- sending, replying, editing --------------------------------------------------------------


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


# --- callback queries, waiting, events -------------------------------------------------------


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


# --- a whole PTB application -----------------------------------------------------------------


async def test_ptb_application_polls_downloads_and_replies(emulator: BotApiEmulator) -> None:
    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Echo the text as a quoted reply."""
        message = update.effective_message
        await message.reply_text(f"echo {message.text}", do_quote=True)

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Download the largest size and reply with its byte count."""
        file = await update.effective_message.photo[-1].get_file()
        data = await file.download_as_bytearray()
        await update.effective_message.reply_text(f"{len(data)} bytes", do_quote=True)

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{emulator.url}/bot")
        .base_file_url(f"{emulator.url}/file/bot")
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, on_text))
    application.add_handler(MessageHandler(filters.PHOTO, on_photo))
    async with application:
        await application.start()
        await application.updater.start_polling(timeout=1)
        try:
            question = emulator.send_text(ANN, ANN, "hello")
            reply = await emulator.wait_for_reply(ANN, question["message_id"], timeout=3)
            assert reply["text"] == "echo hello"
            photo = emulator.send_photo(ANN, ANN, png_bytes(500, 300))
            reply = await emulator.wait_for_reply(ANN, photo["message_id"], timeout=3)
            assert reply["text"] == f"{photo['photo'][-1]['file_size']} bytes"
        finally:
            await application.updater.stop()
            await application.stop()
    assert [name for name, _ in emulator.calls[:2]] == ["getMe", "deleteWebhook"]
    assert ("getFile", {"file_id": photo["photo"][-1]["file_id"]}) in emulator.calls
    assert [name for name, _ in emulator.calls].count("download") == 1
