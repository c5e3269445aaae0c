"""Limits that keep one sender from stalling the bot: the time budget of an image.

The real bot against the emulator; slow images are stood in for by a classifier that sleeps.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.emulator import BotApiEmulator
from bot.heartbeat import heartbeat_problem
from core.serving import Classifier
from tests.bot.conftest import USER_ID
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
