"""A newcomer's first ten minutes (issue 16): the welcome, settings, start-up failures, defaults."""

from __future__ import annotations

from typing import Any

from bot.emulator import BotApiEmulator
from tests.bot.conftest import USER_ID


async def test_start_is_a_short_welcome_and_help_has_the_details(
    start_bot: Any, emulator: BotApiEmulator
) -> None:
    await start_bot()
    start = emulator.send_text(USER_ID, USER_ID, "/start")
    welcome = (await emulator.wait_for_reply(USER_ID, start["message_id"]))["text"]
    assert welcome.startswith("Hello, Bob!")
    assert len(welcome.splitlines()) <= 4 and len(welcome) < 400, welcome
    assert "photo" in welcome and "for example a 7" in welcome and "/help" in welcome
    help_message = emulator.send_text(USER_ID, USER_ID, "/help")
    details = (await emulator.wait_for_reply(USER_ID, help_message["message_id"]))["text"]
    assert len(details) > 3 * len(welcome)
    assert "Corrections" in details and "/forget" in details and "debug" in details
