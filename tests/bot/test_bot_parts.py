"""The bot's pure pieces: photo size choice, group decisions, flood gate, reply texts, token
redaction and the `digitbot run/start/health` commands."""

from __future__ import annotations

import io
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from telegram import Chat, Message, MessageEntity, PhotoSize, User

from bot import replies
from bot.cli import main
from bot.handlers.images import (
    caption_command,
    choose_photo_size,
    is_image_document,
    should_answer_image,
)
from bot.handlers.retrain import RetrainCommand, parse_command
from bot.heartbeat import heartbeat_problem
from bot.redaction import RedactSecrets, install_redaction
from bot.state import FloodGate, FloodVerdict
from core.serving import Classification, DigitPrediction

BOT_ID = 123456
BOT_NAME = "digitbot_test_bot"


def photo_sizes(*sides: tuple[int, int]) -> list[PhotoSize]:
    return [PhotoSize(f"id{w}x{h}", f"u{w}x{h}", w, h, file_size=w * h // 10) for w, h in sides]


def test_photo_size_is_the_smallest_with_800_px_else_the_largest() -> None:
    telegram_sizes = photo_sizes((90, 68), (320, 240), (800, 600), (1280, 960))
    assert choose_photo_size(telegram_sizes).width == 800
    portrait = photo_sizes((1280, 1707), (68, 90), (600, 800))
    assert choose_photo_size(portrait).height == 800
    small = photo_sizes((90, 68), (400, 300), (320, 240))
    assert choose_photo_size(small).width == 400
    with pytest.raises(ValueError, match="without sizes"):
        choose_photo_size([])


@pytest.mark.parametrize(
    ("file_name", "mime_type", "expected"),
    [
        ("digit.png", "image/png", True),
        ("scan.TIFF", "application/octet-stream", True),
        ("photo", "image/webp", True),
        ("x.gif", None, True),
        ("x.bmp", "image/x-ms-bmp", True),
        ("notes.txt", "text/plain", False),
        ("drawing.svg", "image/svg+xml", False),
        (None, None, False),
    ],
)
def test_image_documents_by_mime_type_or_extension(
    file_name: str | None,
    mime_type: str | None,
    expected: bool,
) -> None:
    assert is_image_document(file_name, mime_type) is expected


def group_photo(
    caption: str | None = None,
    entities: list[MessageEntity] | None = None,
    reply_to_bot: bool = False,
    chat_type: str = Chat.SUPERGROUP,
) -> Message:
    chat = Chat(-100123, chat_type)
    user = User(2002, "Bob", is_bot=False)
    replied = None
    if reply_to_bot:
        replied = Message(
            5, datetime.now(UTC), chat, from_user=User(BOT_ID, "Bot", is_bot=True), text="7"
        )
    return Message(
        9,
        datetime.now(UTC),
        chat,
        from_user=user,
        caption=caption,
        caption_entities=entities or [],
        photo=photo_sizes((320, 240)),
        reply_to_message=replied,
    )


def command_entity(text: str) -> list[MessageEntity]:
    return [MessageEntity(MessageEntity.BOT_COMMAND, 0, len(text.split()[0]))]


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("/predict", "predict"),
        (f"/predict@{BOT_NAME} please", "predict"),
        (f"/Predict@{BOT_NAME.upper()}", "predict"),
        ("/predict@another_bot", None),
        ("/stats", "stats"),
    ],
)
def test_caption_commands_addressed_to_this_bot(caption: str, expected: str | None) -> None:
    message = group_photo(caption, command_entity(caption))
    assert caption_command(message, BOT_NAME) == expected


def test_group_photos_are_answered_only_when_addressed_unless_mode_all() -> None:
    def answered(message: Message, mode: str = "mention") -> bool:
        return should_answer_image(message, bot_id=BOT_ID, bot_username=BOT_NAME, group_mode=mode)

    mention = f"look @{BOT_NAME}"
    assert answered(group_photo(mention, [MessageEntity(MessageEntity.MENTION, 5, 18)]))
    assert answered(group_photo("/predict", command_entity("/predict")))
    assert answered(group_photo(reply_to_bot=True))
    assert not answered(group_photo())
    assert not answered(group_photo("@someone", [MessageEntity(MessageEntity.MENTION, 0, 8)]))
    assert not answered(group_photo("/predict@other_bot", command_entity("/predict@other_bot")))
    assert answered(group_photo(), mode="all")
    assert answered(group_photo(chat_type=Chat.PRIVATE))


def test_flood_gate_allows_the_limit_warns_once_then_resets() -> None:
    gate = FloodGate(limit=2, window=10.0)
    verdicts = [gate.check(1, now=100.0 + step) for step in range(5)]
    assert verdicts == [
        FloodVerdict.ALLOW,
        FloodVerdict.ALLOW,
        FloodVerdict.WARN,
        FloodVerdict.DROP,
        FloodVerdict.DROP,
    ]
    assert gate.check(2, now=104.0) is FloodVerdict.ALLOW  # per user
    assert gate.seconds_until_free(1, now=104.0) == pytest.approx(6.0)
    assert gate.check(1, now=110.5) is FloodVerdict.ALLOW  # the first request left the window
    assert gate.check(1, now=111.5) is FloodVerdict.ALLOW
    assert gate.check(1, now=112.0) is FloodVerdict.WARN  # a new window warns again


def test_flood_gate_memory_stays_bounded() -> None:
    gate = FloodGate(limit=1, window=1.0, max_tracked_users=100)
    for user in range(1000):
        gate.check(user, now=float(user))
    assert len(gate._events) <= 102


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], RetrainCommand("fine-tune", 3)),
        (["1"], RetrainCommand("fine-tune", 1)),
        (["100"], RetrainCommand("fine-tune", 100)),
        (["full"], RetrainCommand("full", 33)),
        (["Full", "2"], RetrainCommand("full", 2)),
        (["cancel"], RetrainCommand("cancel")),
    ],
)
def test_retrain_arguments(arguments: list[str], expected: RetrainCommand) -> None:
    assert parse_command(arguments, default=3, full_default=33) == expected


@pytest.mark.parametrize(
    "arguments", [["0"], ["101"], ["lots"], ["2", "3"], ["-1"], ["cancel", "2"], ["2", "full"]]
)
def test_bad_retrain_arguments_say_what_is_allowed(arguments: list[str]) -> None:
    with pytest.raises(ValueError, match="from 1 to 100 \\(default 3\\), or /retrain cancel"):
        parse_command(arguments, default=3, full_default=33)


def prediction(digit: int, top3: list[tuple[int, float]]) -> DigitPrediction:
    return DigitPrediction(
        digit=digit,
        confidence=top3[0][1],
        top3=top3,
        crop=np.zeros((28, 28), np.float32),
        box=(0, 0, 1, 1),
    )


def test_answer_puts_the_digit_first_then_the_top3() -> None:
    sure = Classification([prediction(7, [(7, 0.981), (1, 0.012), (9, 0.004)])], "v1", 0.01)
    assert replies.answer(sure, 0.6) == "<b>7</b>\n7: 98.1%  1: 1.2%  9: 0.4%"
    unsure = Classification([prediction(4, [(4, 0.48), (9, 0.41), (7, 0.05)])], "v1", 0.01)
    text = replies.answer(unsure, 0.6)
    assert text.startswith("<b>4</b>  <i>(not sure)</i>\n4: 48.0%  9: 41.0%  7: 5.0%\n")
    assert "not sure" in text.splitlines()[2]
    assert replies.answer(Classification([], "v1", 0.01), 0.6).startswith(
        "I could not find a digit"
    )


def test_answer_for_a_number_shows_each_digit_and_the_doubtful_ones() -> None:
    number = Classification(
        [
            prediction(2, [(2, 0.99), (7, 0.005), (1, 0.001)]),
            prediction(0, [(0, 0.97), (6, 0.02), (9, 0.005)]),
            prediction(5, [(5, 0.52), (6, 0.40), (3, 0.05)]),
        ],
        "v1",
        0.01,
    )
    lines = replies.answer(number, 0.6).splitlines()
    assert lines[0] == "<b>205</b>  <i>(not sure)</i>"
    assert lines[1] == "2: 99.0%  0: 97.0%  5: 52.0%"
    assert lines[2] == "Digit 3: 5 (52.0%) or 6 (40.0%) or 3 (5.0%)?"


def test_user_text_is_escaped() -> None:
    assert "&lt;b&gt;evil.txt" in replies.not_an_image("<b>evil.txt", "text/plain")
    assert "Hello, A&amp;B!" in replies.start("A&B", "bot")
    assert replies.duration(59) == "59 seconds" and replies.duration(125) == "2 minutes"
    assert replies.duration(7260) == "2 hours"


def test_redaction_removes_the_token_from_messages_arguments_and_tracebacks() -> None:
    token = "987654:SECRET-token_value"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        install_redaction([token])
        logger.info("POST https://api.telegram.org/bot%s/getMe", token)
        logger.info("encoded %s", "bot987654%3ASECRET-token_value/getFile")
        try:
            raise RuntimeError(f"cannot reach https://api.telegram.org/bot{token}/getUpdates")
        except RuntimeError:
            logger.exception("network trouble")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "SECRET" not in output
    assert output.count("<redacted>") == 3
    assert "RuntimeError" in output  # the traceback is still there, minus the token


def test_redaction_filter_on_its_own() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("1:ab",), None)
    RedactSecrets(["1:ab"]).filter(record)
    assert record.getMessage() == "token=<redacted>"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No token from the environment or a developer's .env."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("TELEGRAM_", "HEARTBEAT_")):
            monkeypatch.delenv(name)
    return tmp_path


def test_run_without_a_token_is_a_one_line_error(
    clean_environment: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run"]) == 2
    settings, error = capsys.readouterr().err.splitlines()  # where settings came from, the error
    assert settings.startswith("settings: ") and "TELEGRAM_BOT_TOKEN is not set" in error


def test_health_checks_the_heartbeat(
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    beat = clean_environment / "beat"
    monkeypatch.setenv("HEARTBEAT_FILE", str(beat))
    assert main(["health"]) == 1
    assert "not running" in capsys.readouterr().err
    beat.write_text("x")
    assert main(["health"]) == 0
    old = time.time() - 600
    os.utime(beat, (old, old))
    assert main(["health"]) == 1
    problem = heartbeat_problem(beat)
    assert problem is not None and "stuck" in problem


def test_every_setting_is_documented_in_the_readme_and_env_example() -> None:
    from bot.settings import Settings
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    names = [name.upper() for name in Settings.model_fields]
    assert [name for name in names if f"`{name}`" not in readme] == []
    assert [name for name in names if f"{name}=" not in example] == []


async def test_workers_that_cannot_start_leave_the_bot_classifying_in_threads(
    start_bot: Any,
    emulator: Any,
    mnist: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from core.serving import ClassifierWorkers
    from tests.bot.conftest import USER_ID
    from tests.conftest import digit_photo

    async def broken_warm_up(self: ClassifierWorkers) -> None:
        raise OSError("no processes for you")

    monkeypatch.setattr(ClassifierWorkers, "warm_up", broken_warm_up)
    bot = await start_bot()
    assert bot.state.workers is None
    assert "image worker processes did not start" in caplog.text
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"])
    assert reply["text"].split()[0] == str(mnist.y_test[0])
