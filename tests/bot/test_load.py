"""Bursts: the small form of `digitbot bench --load`, and /start answered while every image slot
is busy. No speed is asserted (CI machines differ); what must hold is that every photo is answered
exactly once, as a reply to that photo, and that commands do not queue behind photos."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from telegram import Chat, Message, PhotoSize, Update, User

from bot.app import CONCURRENT_IMAGES
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.tools.loadtest import LoadSpec, chat_plan, load_photos, run_load
from bot.transport.updates import needs_image_slot
from tests.bot.conftest import USER_ID
from tests.bot.test_bot_e2e import replies_to, settle
from tests.conftest import digit_photo


async def test_sixty_photos_from_twelve_users_in_three_chats_answered_exactly_once(
    mnist: Any,
    model_dir: Path,
) -> None:
    spec = LoadSpec(photos=60, users=12, chats=3, private_chats=1, timeout=60.0)
    photos = load_photos(mnist.x_test, mnist.y_test, spec.photos)
    settings = Settings(_env_file=None, model_dir=model_dir)
    report = await run_load(settings, photos, spec)
    assert report.problems == []
    assert report.answered == 60 and report.ok
    # Distinct digits per photo: an answer sent to the wrong photo would show as a wrong digit.
    assert report.right_digit >= 58, report.lines()
    assert report.start_delays, "no /start was answered during the burst"
    assert report.photos_per_second > 0
    text = "\n".join(report.lines())
    assert "60/60" in text and "rate limiter: off for this run" in text


def test_the_chat_plan_mixes_private_chats_and_groups() -> None:
    plan = chat_plan(LoadSpec(photos=500, users=50, chats=5, private_chats=2))
    assert len(plan) == 50 and len({user for _, user in plan}) == 50
    private = [(chat, user) for chat, user in plan if chat > 0]
    assert len(private) == 2 and all(chat == user for chat, user in private)
    groups = {chat for chat, _ in plan if chat < 0}
    assert len(groups) == 3


def update_with(message: Message) -> Update:
    return Update(1, message=message)


def test_only_image_work_needs_an_image_slot() -> None:
    from datetime import UTC, datetime

    chat, user = Chat(1, Chat.PRIVATE), User(1, "Ann", is_bot=False)
    now = datetime.now(UTC)
    photo = Message(1, now, chat, from_user=user, photo=[PhotoSize("f", "u", 90, 90)])
    text = Message(2, now, chat, from_user=user, text="/start")
    predict = Message(3, now, chat, from_user=user, text="/predict", reply_to_message=photo)
    assert needs_image_slot(update_with(photo))
    assert needs_image_slot(update_with(predict))
    assert not needs_image_slot(update_with(text))
    assert not needs_image_slot(object())


async def test_start_is_answered_while_every_image_slot_is_busy(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot(image_processes=0, worker_threads=1)  # classify in a patchable thread
    release = threading.Event()
    real_classify = bot.state.classifier.classify

    def slow_classify(*arguments: Any, **options: Any) -> Any:
        release.wait(timeout=30)  # the model is stuck until the test lets it go
        return real_classify(*arguments, **options)

    bot.state.classifier.classify = slow_classify
    image = digit_photo(mnist.x_test[0])
    photos = [emulator.send_photo(USER_ID, USER_ID, image) for _ in range(CONCURRENT_IMAGES + 8)]
    try:
        await settle(1.0)  # every slot is taken, the rest of the photos wait for one
        start = emulator.send_text(USER_ID, USER_ID, "/start")
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await emulator.wait_for_reply(USER_ID, start["message_id"], timeout=5)
        assert loop.time() - sent_at < 3.0
        assert all(not replies_to(emulator, USER_ID, p["message_id"]) for p in photos)
    finally:
        release.set()
    for photo in photos:
        await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=30)
    await settle()
    assert all(len(replies_to(emulator, USER_ID, p["message_id"])) == 1 for p in photos)


def test_digitbot_bench_load_prints_the_numbers(
    model_dir: Path,
    mnist_path: Path,
    capsys: Any,
) -> None:
    from bot.cli import main

    assert (
        main(
            [
                "bench",
                "--load",
                "--count",
                "12",
                "--users",
                "4",
                "--chats",
                "3",
                "--model-dir",
                str(model_dir),
                "--mnist-path",
                str(mnist_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "12 photos (800x600 JPEG) from 4 users in 3 chats (2 private, 1 group)" in out
    assert "answered 12/12 in" in out and "photos/s" in out and "/start answered in" in out
    assert "every photo answered exactly once, to the right message" in out
    assert main(["bench", "--load", "--count", "5", "--users", "2", "--chats", "4"]) == 2


async def test_ptbs_own_httpx_backend_still_works(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    from tests.bot.conftest import ADMIN_ID

    await start_bot(bot_api_client="httpx", bot_api_connections=8)
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"])
    assert reply["text"].splitlines()[0] == str(mnist.y_test[0])
    stats = emulator.send_text(ADMIN_ID, ADMIN_ID, "/stats")  # a multipart upload of two images
    await emulator.wait_for_reply(ADMIN_ID, stats["message_id"])
    images = await emulator.wait_for(lambda m: m["chat"]["id"] == ADMIN_ID and "photo" in m)
    assert len(images) == 2
