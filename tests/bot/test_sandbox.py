"""The offline sandbox through its HTTP endpoints: the real bot behind the page's JSON API.

Each test starts the sandbox on a free port (`start_sandbox`, exactly what `digitbot sandbox`
runs), acts through `/sandbox/api/...` as the page does, and checks what the bot answered, both in
the emulator and in what the page reads back (state, event stream, files).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import replies
from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.runner import (
    ADMIN_USER_ID,
    GROUP_CHAT_ID,
    PEOPLE,
    Sandbox,
    start_sandbox,
)
from bot.settings import Settings
from tests.bot.conftest import environment_without, spawn_digitbot
from tests.conftest import digit_photo

GUARD = {"X-Sandbox": "1"}
BOB = PEOPLE[1][0]
REPLY_TIMEOUT = 20.0  # a busy 2-core machine


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, name: str, body: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    async with http.post(f"/sandbox/api/{name}", json=body, headers=GUARD) as response:
        reply = await response.json()
        assert response.status == status, reply
        return reply


async def upload(
    http: aiohttp.ClientSession,
    chat_id: int,
    data: bytes,
    *,
    file_name: str = "digit.png",
    content_type: str = "image/png",
    caption: str | None = None,
    as_document: bool = False,
    user_id: int | None = None,
    status: int = 200,
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(chat_id))
    form.add_field("as_document", "1" if as_document else "0")
    if caption is not None:
        form.add_field("caption", caption)
    if user_id is not None:
        form.add_field("user_id", str(user_id))
    form.add_field("file", data, filename=file_name, content_type=content_type)
    async with http.post("/sandbox/api/send_photo", data=form, headers=GUARD) as response:
        reply = await response.json()
        assert response.status == status, reply
        return reply


async def state(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/sandbox/api/state") as response:
        assert response.status == 200
        return await response.json()


async def reply_to(sandbox: Sandbox, chat_id: int, message: dict[str, Any]) -> dict[str, Any]:
    return await sandbox.emulator.wait_for_reply(chat_id, message["message_id"], REPLY_TIMEOUT)


def first_word(message: dict[str, Any]) -> str:
    return message["text"].splitlines()[0].split()[0]


# --- the page and its assets ---------------------------------------------------------------------


async def test_page_and_assets_are_local(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
    assets = re.findall(r'(?:src|href)="(/sandbox/static/[^"]+)"', html)
    assert sorted(assets) == ["/sandbox/static/app.js", "/sandbox/static/style.css"]
    texts = [html]
    for asset in assets:
        async with http.get(asset) as response:
            assert response.status == 200
            texts.append(await response.text())
    for text in texts:  # works offline: nothing is loaded from another host
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
        assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)
        assert not re.search(r"""import\s.*["'](?:https?:)?//""", text)
    assert sandbox.url.startswith("http://127.0.0.1:")


async def test_state_lists_people_chats_and_group_settings(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    data = await state(http)
    assert data["bot"]["username"] == "digitbot_sandbox_bot"
    assert [user["id"] for user in data["users"]] == [person[0] for person in PEOPLE]
    assert [user["id"] for user in data["users"] if user["is_admin"]] == [ADMIN_USER_ID]
    assert data["current_user_id"] == ADMIN_USER_ID
    chats = {chat["id"]: chat for chat in data["chats"]}
    assert set(chats) == {person[0] for person in PEOPLE} | {GROUP_CHAT_ID}
    group = chats[GROUP_CHAT_ID]
    assert (group["privacy"], group["bot_is_admin"]) == (True, False)
    # The commands menu the bot set: admin commands only in the admin's private chat.
    assert {"stats", "retrain"} <= {c["command"] for c in chats[ADMIN_USER_ID]["commands"]}
    assert "stats" not in {c["command"] for c in chats[BOB]["commands"]}
    assert sandbox.bot_settings.admin_user_ids == [ADMIN_USER_ID]


# --- talking to the bot --------------------------------------------------------------------------


async def test_send_text_and_the_reply_shows_in_the_state(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    sent = await post(http, "send_text", {"chat_id": BOB, "text": "/start", "user_id": BOB})
    message = sent["message"]
    assert message["from"]["id"] == BOB and message["text"] == "/start"
    reply = await reply_to(sandbox, BOB, message)
    assert reply["text"].startswith("Hello, Bob!")
    shown = (await state(http))["messages"][str(BOB)]
    assert [item["message_id"] for item in shown] == [message["message_id"], reply["message_id"]]
    assert shown[1]["reply_to_message"]["text"] == "/start"
    assert any(entity["type"] == "bold" for entity in shown[1]["entities"])  # parsed HTML


async def test_uploaded_photos_get_the_right_digit(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    mnist: Any,
) -> None:
    sent = []
    for index in range(3):  # real MNIST test digits, drawn dark on a light page
        photo = digit_photo(mnist.x_test[index])
        message = (await upload(http, ADMIN_USER_ID, photo))["message"]
        assert [size["width"] for size in message["photo"]] == [90, 320, 400]
        sent.append((message, int(mnist.y_test[index])))
    for message, label in sent:
        assert first_word(await reply_to(sandbox, ADMIN_USER_ID, message)) == str(label)
    # The photo itself is served to the page from the emulator's file store.
    largest = sent[0][0]["photo"][-1]
    async with http.get(f"/sandbox/file/{largest['file_id']}") as response:
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        assert await response.read() == sandbox.emulator.file_bytes(largest["file_id"])


async def test_a_document_upload_with_a_reply_and_caption(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    mnist: Any,
) -> None:
    hello = (await post(http, "send_text", {"chat_id": ADMIN_USER_ID, "text": "hi"}))["message"]
    await reply_to(sandbox, ADMIN_USER_ID, hello)
    data = digit_photo(mnist.x_test[1])
    form = aiohttp.FormData()
    form.add_field("chat_id", str(ADMIN_USER_ID))
    form.add_field("as_document", "1")
    form.add_field("caption", "  my scan ")
    form.add_field("reply_to_message_id", str(hello["message_id"]))
    form.add_field("file", data, filename="scan.png", content_type="image/png")
    async with http.post("/sandbox/api/send_photo", data=form, headers=GUARD) as response:
        message = (await response.json())["message"]
    assert message["document"]["file_name"] == "scan.png"
    assert message["caption"] == "my scan"
    assert message["reply_to_message"]["message_id"] == hello["message_id"]
    assert "thumbnail" in message["document"]
    reply = await reply_to(sandbox, ADMIN_USER_ID, message)
    assert first_word(reply) == str(int(mnist.y_test[1]))


async def test_non_admin_stats_is_refused(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    await post(http, "current_user", {"user_id": BOB})
    message = (await post(http, "send_text", {"chat_id": BOB, "text": "/stats"}))["message"]
    assert message["from"]["id"] == BOB  # sent as the current person
    reply = await reply_to(sandbox, BOB, message)
    assert reply["text"] == replies.admin_only()


async def test_admin_stats_shows_accuracy_and_images(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    message = (await post(http, "send_text", {"chat_id": ADMIN_USER_ID, "text": "/stats"}))[
        "message"
    ]
    reply = await reply_to(sandbox, ADMIN_USER_ID, message)
    accuracy = sandbox.application.bot_data["digitbot"].classifier.metadata["test_accuracy"]
    assert f"accuracy {accuracy * 100:.2f}%" in reply["text"]
    pictures = await sandbox.emulator.wait_for(
        lambda item: (
            "photo" in item
            and item.get("reply_to_message", {}).get("message_id") == message["message_id"]
        ),
        timeout=REPLY_TIMEOUT,
    )
    assert len(pictures) == 2 and pictures[0]["media_group_id"] == pictures[1]["media_group_id"]
    shown = (await state(http))["messages"][str(ADMIN_USER_ID)]
    assert [item["message_id"] for item in shown][-2:] == [p["message_id"] for p in pictures]
    for picture in pictures:
        async with http.get(f"/sandbox/file/{picture['photo'][-1]['file_id']}") as response:
            assert response.status == 200 and response.content_type == "image/jpeg"


async def test_the_admin_switch_changes_the_running_bot(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    reply = await post(http, "admin", {"user_id": BOB, "is_admin": True})
    assert reply["admin_user_ids"] == [ADMIN_USER_ID, BOB]
    await post(http, "admin", {"user_id": ADMIN_USER_ID, "is_admin": False})
    assert sandbox.bot_settings.admin_user_ids == [BOB]
    users = {user["id"]: user["is_admin"] for user in (await state(http))["users"]}
    assert users[BOB] and not users[ADMIN_USER_ID]
    bob = (await post(http, "send_text", {"chat_id": BOB, "text": "/stats", "user_id": BOB}))[
        "message"
    ]
    alice = (await post(http, "send_text", {"chat_id": ADMIN_USER_ID, "text": "/stats"}))["message"]
    assert "accuracy" in (await reply_to(sandbox, BOB, bob))["text"]
    assert (await reply_to(sandbox, ADMIN_USER_ID, alice))["text"] == replies.admin_only()


async def test_group_with_privacy_mode_and_its_switches(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    mnist: Any,
) -> None:
    captioned = (
        await upload(
            http, GROUP_CHAT_ID, digit_photo(mnist.x_test[2]), caption="/predict", user_id=BOB
        )
    )["message"]
    reply = await reply_to(sandbox, GROUP_CHAT_ID, captioned)
    assert first_word(reply) == str(int(mnist.y_test[2]))
    settings = await post(http, "group", {"chat_id": GROUP_CHAT_ID, "bot_is_admin": True})
    assert (settings["privacy"], settings["bot_is_admin"]) == (True, True)
    await post(http, "group", {"chat_id": GROUP_CHAT_ID, "privacy": False})
    assert sandbox.emulator.group_settings(GROUP_CHAT_ID)["privacy"] is False
    group = next(chat for chat in (await state(http))["chats"] if chat["id"] == GROUP_CHAT_ID)
    assert (group["privacy"], group["bot_is_admin"]) == (False, True)
    # A private chat has no group settings.
    refused = await post(http, "group", {"chat_id": BOB, "privacy": False}, status=400)
    assert "private chat" in refused["error"]


async def test_inline_buttons_are_pressed_as_the_current_person(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    # The bot sends no keyboards today; send one as the bot through the Bot API.
    bot = sandbox.application.bot
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    async with aiohttp.ClientSession() as raw:
        url = f"{sandbox.bot_settings.telegram_api_url}/bot{bot.token}/sendMessage"
        async with raw.post(
            url, json={"chat_id": ADMIN_USER_ID, "text": "Sure?", "reply_markup": keyboard}
        ) as response:
            sent = (await response.json())["result"]
    pressed = await post(
        http,
        "press_button",
        {"chat_id": ADMIN_USER_ID, "message_id": sent["message_id"], "callback_data": "yes"},
    )
    query = pressed["callback_query"]
    assert (query["data"], query["from"]["id"]) == ("yes", ADMIN_USER_ID)
    assert query["id"] in sandbox.emulator.callback_answers
    wrong = await post(
        http,
        "press_button",
        {"chat_id": ADMIN_USER_ID, "message_id": sent["message_id"], "callback_data": "no"},
        status=400,
    )
    assert "no button" in wrong["error"]


# --- the event stream ----------------------------------------------------------------------------


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for line in response.content:
        if line.startswith(b"data: "):
            yield json.loads(line[len(b"data: ") :])


async def test_event_stream_carries_messages_edits_and_page_changes(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/sandbox/api/events") as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        events = read_events(response)
        sent = await post(http, "send_text", {"chat_id": ADMIN_USER_ID, "text": "/help"})
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(REPLY_TIMEOUT):
            async for event in events:
                seen.append(event)
                message = event.get("message", {})
                if (
                    message.get("reply_to_message", {}).get("message_id")
                    == (sent["message"]["message_id"])
                ):
                    break
        assert seen[0]["type"] == "new_message" and seen[0]["message"]["text"] == "/help"
        assert seen[-1]["message"]["from"]["id"] == sandbox.emulator.bot_id
        # The bot's edits (the /retrain progress) arrive as edited_message events.
        bot = sandbox.application.bot
        await bot.edit_message_text(
            "edited text", chat_id=ADMIN_USER_ID, message_id=seen[-1]["message"]["message_id"]
        )
        await post(http, "current_user", {"user_id": BOB})
        await post(http, "admin", {"user_id": BOB, "is_admin": True})
        kinds: list[str] = []
        async with asyncio.timeout(REPLY_TIMEOUT):
            async for event in events:
                kinds.append(event["type"])
                if event["type"] == "edited_message":
                    assert event["message"]["text"] == "edited text"
                    assert "edit_date" in event["message"]
                if event["type"] == "admins":
                    assert event["admin_user_ids"] == [ADMIN_USER_ID, BOB]
                    break
        assert kinds == ["edited_message", "current_user", "admins"]


# --- refusals ------------------------------------------------------------------------------------


async def test_posts_need_the_sandbox_header(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    # A plain cross-site form post cannot set this header without a CORS preflight.
    async with http.post(
        "/sandbox/api/send_text", data={"chat_id": str(ADMIN_USER_ID), "text": "/start"}
    ) as response:
        assert response.status == 403
    assert sandbox.emulator.messages(ADMIN_USER_ID) == []


async def test_bad_requests_are_400_with_a_reason(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    unknown = await post(http, "send_text", {"chat_id": 42, "text": "hi"}, status=400)
    assert "unknown chat 42" in unknown["error"]
    other = await post(http, "send_text", {"chat_id": BOB, "text": "hi"}, status=400)
    assert "private chat" in other["error"]  # Alice cannot write in Bob's private chat
    empty = await post(http, "send_text", {"chat_id": ADMIN_USER_ID, "text": "  "}, status=400)
    assert "empty" in empty["error"]
    not_image = await upload(
        http,
        ADMIN_USER_ID,
        b"plain text",
        file_name="notes.txt",
        content_type="text/plain",
        status=400,
    )
    # Telegram's code word is turned into what to do.
    assert not_image["error"].startswith(
        "notes.txt is not an image, so it cannot be sent as a photo"
    )
    assert (
        "send as a file" in not_image["error"] and "IMAGE_PROCESS_FAILED" not in not_image["error"]
    )
    nobody = await post(http, "current_user", {"user_id": 999}, status=400)
    assert "unknown user 999" in nobody["error"]
    async with http.get("/sandbox/api/state?limit=0") as response:
        assert response.status == 400
    async with http.get("/sandbox/file/no-such-file") as response:
        assert response.status == 404


async def test_non_image_files_are_served_as_downloads(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
) -> None:
    page = b"<script>alert(1)</script>"
    message = (
        await upload(
            http,
            ADMIN_USER_ID,
            page,
            file_name="page.html",
            content_type="text/html",
            as_document=True,
        )
    )["message"]
    await reply_to(sandbox, ADMIN_USER_ID, message)  # "page.html is not an image ..."
    async with http.get(f"/sandbox/file/{message['document']['file_id']}") as response:
        assert response.status == 200
        assert response.content_type == "application/octet-stream"
        assert response.headers["Content-Disposition"] == "attachment"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_taken_port_is_a_clear_error(model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            _env_file=None, sandbox_port=port, model_dir=model_dir, heartbeat_file=None
        )
        with pytest.raises(ValueError, match=f"127.0.0.1:{port}.*SANDBOX_PORT"):
            await start_sandbox(settings)


# --- the command line ----------------------------------------------------------------------------


async def test_digitbot_start_without_a_token_serves_the_sandbox_until_ctrl_c(
    model_dir: Path,
    tmp_path: Path,
) -> None:
    environment = environment_without(
        "TELEGRAM_",
        "SANDBOX_",
        "ADMIN_",
        MODEL_DIR=str(model_dir),
        SANDBOX_PORT="0",
        HEARTBEAT_FILE=str(tmp_path / "beat"),
    )
    process = await spawn_digitbot("start", cwd=tmp_path, env=environment)
    output: list[str] = []
    try:
        url = None
        async with asyncio.timeout(60):
            while url is None:
                line = (await process.stdout.readline()).decode()
                assert line, "digitbot start ended early:\n" + "".join(output)
                output.append(line)
                found = re.search(r"Open (http://127\.0\.0\.1:\d+/) in your browser", line)
                url = found.group(1) if found else None
        async with aiohttp.ClientSession(base_url=url) as http:
            message = (await post(http, "send_text", {"chat_id": ADMIN_USER_ID, "text": "/start"}))[
                "message"
            ]
            async with asyncio.timeout(REPLY_TIMEOUT):
                while True:
                    shown = (await state(http))["messages"][str(ADMIN_USER_ID)]
                    if any(
                        item.get("reply_to_message", {}).get("message_id") == message["message_id"]
                        for item in shown
                    ):
                        break
                    await asyncio.sleep(0.1)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest = (await process.stdout.read()).decode()
            code = await process.wait()
        output.append(rest)
        assert code == 0, "".join(output)
        assert "sandbox stopped" in rest
        assert "Traceback" not in "".join(output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_emulator_hooks_validate_their_arguments() -> None:
    emulator = BotApiEmulator()
    emulator.add_user(5, "Eve")
    emulator.add_group(-7, "Small")
    with pytest.raises(ValueError, match="private chat"):
        emulator.configure_group(5, privacy=False)
    with pytest.raises(ValueError, match="unknown user 6"):
        emulator.configure_group(-7, admin_user_ids=[6])
    assert emulator.configure_group(-7, admin_user_ids=[5]) == {
        "privacy": True,
        "bot_is_admin": False,
        "admin_user_ids": [5],
    }
    assert emulator.bot_commands(5) == []
