"""The bad-input corpus (tests/fixtures/bad_inputs) sent to the running bot, as Telegram users
would send it: each file gets one clear reply, nothing reaches the error handler, and the bot
goes on answering ordinary photos afterwards.

What Telegram itself refuses (a zero-byte upload, a "photo" that is not an image, a photo wider
than 10,000 pixels in sum) never reaches a bot; the emulator refuses the same, and the bot's own
defence is still tested where it can be reached (an empty download).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.sandbox.emulator import ApiError, BotApiEmulator
from tests.bot.conftest import USER_ID
from tests.bot.test_bot_e2e import answered_digit, replies_to, settle
from tests.conftest import digit_photo
from tests.fixtures.bad_inputs import make
from tests.fixtures.bad_inputs.make import FOLDER

NO_DIGIT = "I could not find a digit in this picture."
WENT_WRONG = "something went wrong"

# (file, sent as, file name, MIME type, the reply's first line or a substring of the reply)
DOCUMENTS = [
    ("truncated.jpg", "scan.jpg", "image/jpeg", "The image is damaged or truncated"),
    ("bomb-50000x50000.png", "bomb.png", "image/png", "The image is too large (too many pixels)"),
    ("cmyk-7.jpg", "print.jpg", "image/jpeg", "digit 7"),
    ("gray16-4.png", "scan16.png", "image/png", "digit 4"),
    ("transparent.png", "clear.png", "image/png", NO_DIGIT),
    ("animated-0-1-7.gif", "funny.gif", "image/gif", "digit 0"),
    ("text.png", "notes.png", "image/png", "This file is not an image I can read."),
    ("drawing.svg", "drawing.svg", "image/svg+xml", "I cannot read image/svg+xml files."),
    ("drawing.svg", "drawing.png", "image/png", "SVG drawings are not supported."),
    ("one-pixel.png", "dot.png", "image/png", NO_DIGIT),
]
PHOTOS = [
    ("cmyk-7.jpg", "digit 7"),
    ("gray16-4.png", "digit 4"),
    ("transparent.png", NO_DIGIT),
    ("animated-0-1-7.gif", "digit 0"),
    ("one-pixel.png", NO_DIGIT),
    ("black.jpg", NO_DIGIT),
    ("white.jpg", NO_DIGIT),
]
NOT_PHOTOS = ["truncated.jpg", "bomb-50000x50000.png", "text.png", "drawing.svg"]


def check_reply(reply: dict[str, Any], expected: str) -> None:
    if expected.startswith("digit "):
        assert answered_digit(reply) == expected.removeprefix("digit "), reply["text"]
    else:
        assert expected in reply["text"], reply["text"]
    assert WENT_WRONG not in reply["text"]


async def test_every_bad_input_gets_one_clear_reply_and_the_bot_keeps_serving(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    bot = await start_bot()
    sent: list[tuple[dict[str, Any], str]] = []
    # All at once, documents and photos interleaved, as a busy group would.
    for name, file_name, mime_type, expected in DOCUMENTS:
        message = emulator.send_document(
            USER_ID, USER_ID, (FOLDER / name).read_bytes(), file_name=file_name, mime_type=mime_type
        )
        sent.append((message, expected))
    for name, expected in PHOTOS:
        sent.append((emulator.send_photo(USER_ID, USER_ID, (FOLDER / name).read_bytes()), expected))
    for message, expected in sent:
        check_reply(
            await emulator.wait_for_reply(USER_ID, message["message_id"], timeout=30), expected
        )

    # The bot still reads an ordinary photo.
    normal = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    reply = await emulator.wait_for_reply(USER_ID, normal["message_id"])
    assert answered_digit(reply) == str(mnist.y_test[0])
    await settle()
    for message, _ in [*sent, (normal, "")]:
        assert len(replies_to(emulator, USER_ID, message["message_id"])) == 1
    assert bot.state.predictions_served == 1 + sum(
        expected.startswith("digit ") or expected == NO_DIGIT
        for expected in [e for *_, e in DOCUMENTS] + [e for _, e in PHOTOS]
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_what_telegram_refuses_never_reaches_the_bot(emulator: BotApiEmulator) -> None:
    with pytest.raises(ApiError, match="file must be non-empty"):
        emulator.send_document(
            USER_ID,
            USER_ID,
            (FOLDER / "empty.jpg").read_bytes(),
            file_name="empty.jpg",
            mime_type="image/jpeg",
        )
    for name in NOT_PHOTOS:
        with pytest.raises(ApiError, match="IMAGE_PROCESS_FAILED"):
            emulator.send_photo(USER_ID, USER_ID, (FOLDER / name).read_bytes())
    with pytest.raises(ApiError, match="PHOTO_INVALID_DIMENSIONS"):
        emulator.send_photo(USER_ID, USER_ID, make.enormous_png(8000, 6000))


async def test_an_empty_download_is_answered_clearly(
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    await start_bot()
    message = emulator.send_document(
        USER_ID,
        USER_ID,
        (FOLDER / "cmyk-7.jpg").read_bytes(),
        file_name="x.jpg",
        mime_type="image/jpeg",
    )
    # The server loses the file's content between the upload and the bot's download.
    emulator._files.get(message["document"]["file_id"]).data = b""
    reply = await emulator.wait_for_reply(USER_ID, message["message_id"])
    assert "The file is empty." in reply["text"] and WENT_WRONG not in reply["text"]


async def test_enormous_valid_documents_under_and_over_the_pixel_limit(
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    bot = await start_bot()
    limit = bot.settings.max_image_pixels
    assert 6000 * 4000 < limit < 8000 * 6000, "the default MAX_IMAGE_PIXELS changed"
    under = emulator.send_document(
        USER_ID,
        USER_ID,
        make.enormous_png(6000, 4000),
        file_name="poster.png",
        mime_type="image/png",
    )
    over = emulator.send_document(
        USER_ID,
        USER_ID,
        make.enormous_png(8000, 6000),
        file_name="billboard.png",
        mime_type="image/png",
    )
    reply = await emulator.wait_for_reply(USER_ID, under["message_id"], timeout=30)
    assert answered_digit(reply) == "7"
    reply = await emulator.wait_for_reply(USER_ID, over["message_id"], timeout=30)
    assert f"too large: 8000x6000 pixels (the limit is {limit:,} pixels)" in reply["text"]
