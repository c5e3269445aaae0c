"""The emulator's HTTP surface: getMe, tokens, unknown methods, the parameter encodings."""

from __future__ import annotations

import json

import aiohttp
import pytest
import telegram
from telegram.error import InvalidToken

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, BOT_USERNAME, TOKEN, call

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
