"""Limits that keep one sender from stalling the bot: the time budget of an image, flood limits
of commands and button presses, and each user's share of a group's message budget.

The real bot against the emulator; slow images are stood in for by a classifier that sleeps.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.heartbeat import heartbeat_problem
from bot.sandbox.emulator import BotApiEmulator
from core.serving import Classifier
from tests.bot.conftest import GROUP_ID, OTHER_USER_ID, USER_ID
from tests.conftest import digit_photo


async def test_an_image_past_its_budget_gets_a_clear_reply_and_shows_in_the_health_check(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Classifier.classify

    def slow(self: Classifier, image: Any, **options: Any) -> Any:
        if isinstance(image, bytes):  # a photo, not the start-up warm-up
            time.sleep(3.0)  # a decoder stuck on this image
        return real(self, image, **options)

    monkeypatch.setattr(Classifier, "classify", slow)
    # Threads (IMAGE_PROCESSES=0): the monkeypatched classifier runs in this process.
    running = await start_bot(image_processes=0, image_timeout_seconds=0.5)
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    started = time.monotonic()
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=10)
    assert time.monotonic() - started < 2.5  # answered at the budget, not when the work ends
    assert "took too long" in reply["text"]
    # The thread is still busy: past twice the budget the heartbeat says so.
    time.sleep(0.6)
    (job,) = running.application.job_queue.get_jobs_by_name("heartbeat")
    await job.run(running.application)
    problem = heartbeat_problem(running.settings.heartbeat_file)
    assert problem is not None and "1 image(s) in progress" in problem


async def test_commands_and_button_presses_are_flood_limited_per_user(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot(action_flood_limit=3, group_user_share_per_minute=5)
    sent = [emulator.send_text(USER_ID, USER_ID, "/help") for _ in range(5)]
    answers = [await emulator.wait_for_reply(USER_ID, m["message_id"]) for m in sent[:4]]
    assert all(
        answer["text"].startswith("Too many") is (i == 3) for i, answer in enumerate(answers)
    )
    await asyncio.sleep(0.5)
    assert not any(
        m.get("reply_to_message", {}).get("message_id") == sent[4]["message_id"]
        for m in emulator.messages(USER_ID)
    )  # the fifth is ignored
    # Another user is not affected; their presses count on their own.
    photo = emulator.send_photo(OTHER_USER_ID, OTHER_USER_ID, digit_photo(mnist.x_test[0]))
    answer = await emulator.wait_for_reply(OTHER_USER_ID, photo["message_id"])
    sample = answer["reply_markup"]["inline_keyboard"][-1][-1]["callback_data"].split(":")[1]
    notices = []
    for press in range(4):  # "no" (a digit picker) and "back", in turn: each edits the answer
        data = f"fb:{sample}:{'back' if press % 2 else 'no'}"

        def shows(m: dict[str, Any], data: str = data) -> bool:
            return m["message_id"] == answer["message_id"] and data in str(m.get("reply_markup"))

        await emulator.wait_for(shows, timeout=10)
        query = emulator.press_button(OTHER_USER_ID, answer["message_id"], OTHER_USER_ID, data)
        notices.append(await emulator.wait_for_callback_answer(query["id"]))
    assert "Too many" not in str(notices[:3]) and "Too many" in notices[3]["text"]


async def test_one_members_flood_delays_another_members_answer_by_at_most_one_share(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    share, group_rate = 5, 20  # the defaults, written out
    await start_bot(group_user_share_per_minute=share, rate_limit_group_per_minute=group_rate)
    # The bound: another member waits behind at most one share of the flooder's messages (and
    # one warning).
    bound = (share + 1) * 60 / group_rate
    for _ in range(30):
        emulator.send_text(GROUP_ID, USER_ID, "/help")
    await asyncio.sleep(0.5)  # the 30 commands are in, their answers queued
    photo = emulator.send_photo(
        GROUP_ID, OTHER_USER_ID, digit_photo(mnist.x_test[0]), caption="/predict"
    )
    started = time.monotonic()
    answer = await emulator.wait_for_reply(GROUP_ID, photo["message_id"], timeout=bound + 5)
    delay = time.monotonic() - started
    print(f"another member's answer came {delay:.2f} s after their photo (bound {bound:.0f} s)")
    assert answer["text"] and delay < bound


async def test_commands_for_other_bots_do_not_count(
    start_bot: Any, emulator: BotApiEmulator
) -> None:
    await start_bot(action_flood_limit=2)
    for _ in range(3):
        emulator.send_text(GROUP_ID, USER_ID, "/start@some_other_bot")
    ours = emulator.send_text(GROUP_ID, USER_ID, "/help")
    reply = await emulator.wait_for_reply(GROUP_ID, ours["message_id"])
    assert not reply["text"].startswith("Too many")
