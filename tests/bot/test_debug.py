"""Showing what the model saw, and phone photos end to end: the real bot polling the emulator.

`debug` in a caption (or `/debug` replying to a photo) makes the bot send back the 28x28 crops it
classified, enlarged, and the photo with its pieces of ink boxed (digits, and what was left out
and why); generated phone photos of MNIST test digits and of numbers are answered.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
from PIL import Image

from bot.sandbox.emulator import BotApiEmulator
from core.bench.photos import render_number, render_photo
from tests.bot.conftest import BOT_USERNAME, GROUP_ID, USER_ID
from tests.bot.test_bot_e2e import big_photo


def bot_replies(emulator: BotApiEmulator, chat_id: int, message_id: int) -> list[dict[str, Any]]:
    return [
        message
        for message in emulator.messages(chat_id)
        if message["from"]["id"] == emulator.bot_id
        and message.get("reply_to_message", {}).get("message_id") == message_id
    ]


async def wait_for_photo_reply(
    emulator: BotApiEmulator, chat_id: int, message_id: int
) -> dict[str, Any]:
    """The bot's photo that replies to `message_id`."""
    found = await emulator.wait_for(
        lambda message: (
            message["chat"]["id"] == chat_id
            and "photo" in message
            and message.get("reply_to_message", {}).get("message_id") == message_id
        )
    )
    return found[0]


def photo_size(emulator: BotApiEmulator, message: dict[str, Any]) -> tuple[int, int]:
    largest = max(message["photo"], key=lambda size: size["width"] * size["height"])
    return Image.open(io.BytesIO(emulator.file_bytes(largest["file_id"]))).size


async def test_debug_caption_sends_the_answer_and_the_enlarged_crop(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    digit, label = mnist.x_test[0], int(mnist.y_test[0])
    sent = emulator.send_photo(USER_ID, USER_ID, big_photo(digit), caption="debug please")
    answer = await emulator.wait_for(
        lambda message: (
            "text" in message
            and message.get("reply_to_message", {}).get("message_id") == sent["message_id"]
        )
    )
    assert answer[0]["text"].splitlines()[0] == str(label)
    crops = await wait_for_photo_reply(emulator, USER_ID, sent["message_id"])
    assert "What the model saw" in crops["caption"] and f"Read as {label}" in crops["caption"]
    width, height = photo_size(emulator, crops)
    assert width >= 4 * 28 and height >= 4 * 28, "the 28x28 crop is sent enlarged"
    # And the picture of the pieces: what became a digit, what was left out and why.
    pieces = await emulator.wait_for(
        lambda message: (
            message.get("reply_to_message", {}).get("message_id") == sent["message_id"]
            and "The pieces of ink" in message.get("caption", "")
        )
    )
    assert photo_size(emulator, pieces[0])[0] >= 600, "the photo itself, boxes drawn on it"


async def test_debug_reply_to_a_photo_sends_only_the_crops(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    photo = emulator.send_photo(USER_ID, USER_ID, big_photo(mnist.x_test[1]))
    await emulator.wait_for_reply(USER_ID, photo["message_id"])
    command = emulator.send_text(
        USER_ID, USER_ID, "/debug", reply_to_message_id=photo["message_id"]
    )
    crops = await wait_for_photo_reply(emulator, USER_ID, photo["message_id"])
    assert f"Read as {int(mnist.y_test[1])}" in crops["caption"]
    await asyncio.sleep(0.3)  # nothing else may follow
    answers = await emulator.wait_for(
        lambda message: (
            message.get("reply_to_message", {}).get("message_id") == photo["message_id"]
            and "The pieces of ink" in message.get("caption", "")
        )
    )
    answers = bot_replies(emulator, USER_ID, photo["message_id"])
    assert len(answers) == 3, "the answer, a photo of its crops, one of the pieces of ink"
    assert not bot_replies(emulator, USER_ID, command["message_id"])


async def test_debug_without_a_photo_explains_itself(
    start_bot: Any, emulator: BotApiEmulator
) -> None:
    await start_bot()
    command = emulator.send_text(USER_ID, USER_ID, "/debug")
    reply = await emulator.wait_for_reply(USER_ID, command["message_id"])
    assert "/debug as a reply to a photo" in reply["text"]


async def test_debug_caption_command_reaches_the_bot_in_a_private_mode_group(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    sent = emulator.send_photo(
        GROUP_ID, USER_ID, big_photo(mnist.x_test[2]), caption=f"/debug@{BOT_USERNAME}"
    )
    crops = await wait_for_photo_reply(emulator, GROUP_ID, sent["message_id"])
    assert f"Read as {int(mnist.y_test[2])}" in crops["caption"]


async def test_a_generated_phone_photo_is_answered(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    rng = np.random.default_rng(3)
    answers = []
    for index, condition in ((3, "shadow"), (4, "grid_paper")):
        jpeg = render_photo(mnist.x_test[index], condition, rng)
        sent = emulator.send_photo(USER_ID, USER_ID, jpeg)
        reply = await emulator.wait_for_reply(USER_ID, sent["message_id"])
        answers.append((reply["text"].split()[0], str(int(mnist.y_test[index]))))
    assert all(got == want for got, want in answers), answers


async def test_a_photo_of_a_number_is_answered_digit_by_digit(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    indices = [5, 6, 7, 8]
    label = "".join(str(int(mnist.y_test[index])) for index in indices)
    jpeg = render_number(
        [mnist.x_test[index] for index in indices], "clean", np.random.default_rng(11)
    )
    sent = emulator.send_photo(USER_ID, USER_ID, jpeg, caption="debug")
    reply = await emulator.wait_for(
        lambda message: (
            "text" in message
            and message.get("reply_to_message", {}).get("message_id") == sent["message_id"]
        )
    )
    lines = reply[0]["text"].splitlines()
    assert lines[0].split()[0] == label, reply[0]["text"]
    assert lines[1].count("%") == len(label), "each digit's confidence, compactly"
    crops = await wait_for_photo_reply(emulator, USER_ID, sent["message_id"])
    assert f"the {len(label)} 28x28 crops" in crops["caption"]
    width, height = photo_size(emulator, crops)
    assert width > 2 * height, "the crops side by side"
