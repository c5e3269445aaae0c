"""The sandbox against other web sites in the same browser (issue 17): a running sandbox, asked
the way a hostile page (or a DNS-rebound name) would ask it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.emulator.guard import CONTENT_SECURITY_POLICY
from bot.sandbox.runner import ADMIN_USER_ID, Sandbox, start_sandbox, stop_sandbox
from bot.settings import Settings
from tests.bot.test_sandbox import GUARD, upload

OLD_FIXED_TOKEN = "7000000001:sandbox-local-token"  # what every sandbox used to accept


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as session:
        yield session


def token_of(sandbox: Sandbox) -> str:
    token = sandbox.bot_settings.telegram_bot_token
    assert token is not None
    return token.get_secret_value()


async def test_a_foreign_host_is_refused_on_every_route(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    rebound = {"Host": "attacker.example:8080"}  # a DNS name rebound to 127.0.0.1
    for path in (
        "/",
        "/sandbox/static/app.js",
        "/sandbox/api/state",
        f"/bot{token_of(sandbox)}/getMe",
        "/sandbox/file/unknown",
    ):
        async with http.get(path, headers=rebound) as response:
            assert response.status == 403, path
    async with http.get("/sandbox/api/state", headers={"Host": "localhost"}) as response:
        assert response.status == 200


async def test_cross_site_posts_are_refused_even_with_the_right_token(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    evil = {"Origin": "http://attacker.example", **GUARD}
    async with http.post(
        "/sandbox/api/send_text",
        json={"chat_id": ADMIN_USER_ID, "text": "/start"},
        headers=evil,
    ) as response:
        assert response.status == 403
    # A plain HTML form post to the Bot API half (no custom header possible there).
    async with http.post(
        f"/bot{token_of(sandbox)}/sendMessage",
        data={"chat_id": str(ADMIN_USER_ID), "text": "forged"},
        headers={"Origin": "null"},
    ) as response:
        assert response.status == 403
    assert all(message["text"] != "forged" for message in sandbox.emulator.messages(ADMIN_USER_ID))
    async with http.post(
        "/sandbox/api/send_text",
        json={"chat_id": ADMIN_USER_ID, "text": "/start"},
        headers={"Origin": sandbox.url.rstrip("/"), **GUARD},
    ) as response:
        assert response.status == 200  # the page itself


async def test_the_token_is_new_each_run(
    sandbox: Sandbox, http: aiohttp.ClientSession, model_dir: Path, tmp_path: Path
) -> None:
    async with http.get(f"/bot{OLD_FIXED_TOKEN}/getMe") as response:
        assert response.status == 401
    other = await start_sandbox(
        Settings(
            _env_file=None,
            sandbox_port=0,
            model_dir=model_dir,
            heartbeat_file=None,
            data_dir=tmp_path / "other",
            database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}",
        )
    )
    try:
        assert token_of(other) != token_of(sandbox)
        assert len(token_of(sandbox).split(":")[1]) >= 32
    finally:
        await stop_sandbox(other)


async def test_uploads_are_served_as_attachments_never_as_html(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    html = b"<html><script>alert(document.domain)</script></html>"
    sent = await upload(
        http,
        ADMIN_USER_ID,
        html,
        file_name="page.html",
        content_type="text/html",
        as_document=True,
    )
    document = sent["message"]["document"]
    async with http.get(f"/sandbox/file/{document['file_id']}") as response:
        assert response.status == 200
        assert response.content_type == "application/octet-stream"
        assert response.headers["Content-Disposition"] == "attachment"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The Bot API half's download (what the bot fetches) is an attachment too.
    async with http.get(
        f"/bot{token_of(sandbox)}/getFile", params={"file_id": document["file_id"]}
    ) as response:
        path = (await response.json())["result"]["file_path"]
    async with http.get(f"/file/bot{token_of(sandbox)}/{path}") as response:
        assert await response.read() == html
        assert response.headers["Content-Disposition"] == "attachment"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_response_has_a_strict_content_security_policy(
    http: aiohttp.ClientSession,
) -> None:
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    for path in ("/", "/sandbox/static/app.js", "/sandbox/api/state", "/no/such/page"):
        async with http.get(path) as response:
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"
