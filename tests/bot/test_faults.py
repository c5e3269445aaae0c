"""Faults: the Bot API failing for a while, a damaged model folder at start, and a /retrain whose
training process dies. In each case nothing is lost or doubled, the served model keeps serving,
and whoever needs to know is told (the admin, or the log and /stats)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.sandbox.emulator import BotApiEmulator
from core import registry
from tests.bot.conftest import ADMIN_ID, TOKEN, USER_ID
from tests.bot.test_bot_e2e import (
    RETRAIN_TIMEOUT,
    TOP3_LINE,
    answered_digit,
    replies_to,
    settle,
    staging_folders,
)
from tests.conftest import digit_photo

WENT_WRONG = "something went wrong"
ANSWER_METHODS = {"getFile", "download", "sendMessage"}


def folder_listing(folder: Path) -> dict[str, int]:
    """Every file under `folder` (relative path -> size), hidden ones included."""
    return {
        str(path.relative_to(folder)): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def send_photos_and_check_each_answered_once(
    bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    count: int,
    first: int = 0,
) -> None:
    """Send `count` distinct MNIST digits; each gets exactly one reply, with its digit."""
    sent = [
        emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[first + index]))
        for index in range(count)
    ]
    for message in sent:
        reply = await emulator.wait_for_reply(USER_ID, message["message_id"], timeout=60)
        assert WENT_WRONG not in reply["text"], reply["text"]
        largest = max(message["photo"], key=lambda size: size["width"])
        expected = bot.state.classifier.classify(emulator.file_bytes(largest["file_id"]))
        assert answered_digit(reply) == expected.number
    await settle(0.5)
    for message in sent:
        assert len(replies_to(emulator, USER_ID, message["message_id"])) == 1
    assert emulator.pending_updates() == []


# --- the Bot API failing for a while -----------------------------------------------------------


@pytest.mark.parametrize(("kind", "count"), [("500", 10), ("drop", 10), ("timeout", 4), ("429", 6)])
async def test_photos_sent_while_the_bot_api_fails_are_each_answered_once(
    kind: str,
    count: int,
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    bot = await start_bot()
    # Polling fails twice (PTB's Updater backs off 1 s, then 1.5 s) while the photos arrive...
    emulator.inject_faults(2, kind, retry_after=1, methods={"getUpdates"})
    await settle(1.2)  # the long poll in flight ends; the next ones meet the faults
    # ...and then the next `count` requests that answer them fail too.
    emulator.inject_faults(count, kind, retry_after=1, methods=ANSWER_METHODS)
    await send_photos_and_check_each_answered_once(bot, emulator, mnist, 6)
    # (the emulator has no public view of its unused faults)
    assert not emulator._faults, "every injected fault should have been met"
    if kind != "429":  # (429s are retried by PTB's AIORateLimiter, which logs at INFO)
        retried = [r for r in caplog.records if r.name == "bot.transport.network"]
        assert retried, "the faults should have hit the answering path, and been retried"
    assert bot.state.predictions_served == 6


async def test_updates_sent_while_polling_fails_arrive_once_after_recovery(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    # Only getUpdates fails: for a few seconds the bot hears nothing (PTB's Updater backs off).
    emulator.inject_faults(4, "500", methods={"getUpdates"})
    await settle(1.2)  # the long poll in flight ends; the next ones meet the faults
    await send_photos_and_check_each_answered_once(bot, emulator, mnist, 5)
    assert not emulator._faults
    assert bot.state.predictions_served == 5


async def test_a_request_that_keeps_failing_ends_in_a_clear_reply_not_silence(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    await start_bot(bot_api_retries=1)
    emulator.inject_faults(2, "500", methods={"getFile"})  # the first try and its one retry
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=20)
    assert WENT_WRONG in reply["text"]
    again = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    reply = await emulator.wait_for_reply(USER_ID, again["message_id"], timeout=20)
    assert answered_digit(reply) == str(mnist.y_test[0])


# --- a damaged model folder at start -----------------------------------------------------------

BROKEN = "29990101-000000-default"  # newer than the shipped version, so CURRENT may name it


def break_model(model_dir: Path, damage: str) -> str:
    """Damage the model folder as `damage` says; return the file the error must name."""
    good = registry.current_version(model_dir)
    if damage == "CURRENT names a missing folder":
        (model_dir / registry.CURRENT_FILE).write_text("20200101-000000-gone\n")
        return str(model_dir / registry.CURRENT_FILE)
    shutil.copytree(model_dir / good, model_dir / BROKEN)
    (model_dir / registry.CURRENT_FILE).write_text(BROKEN + "\n")
    target = model_dir / BROKEN / registry.TFLITE_FILE
    if damage == "corrupt model.tflite":
        target.write_bytes(b"not a flatbuffer")
    elif damage == "truncated model.tflite":
        data = (model_dir / good / registry.TFLITE_FILE).read_bytes()
        target.write_bytes(data[: len(data) // 3])
    elif damage == "missing model.tflite":
        target.unlink()
    elif damage == "corrupt metadata.json":
        target = model_dir / BROKEN / registry.METADATA_FILE
        target.write_text("{ not json")
    else:
        raise ValueError(damage)
    return str(target)


@pytest.mark.parametrize(
    "damage",
    [
        "corrupt model.tflite",
        "truncated model.tflite",
        "missing model.tflite",
        "corrupt metadata.json",
        "CURRENT names a missing folder",
    ],
)
async def test_a_damaged_current_model_falls_back_to_the_last_good_version_and_says_so(
    damage: str,
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = registry.current_version(model_dir)
    named = break_model(model_dir, damage)
    caplog.set_level(logging.INFO)
    bot = await start_bot()
    assert bot.state.classifier.version == good
    startup = [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.app" and "serving model" in r.getMessage()
    ]
    assert len(startup) == 1 and f"serving model {good}" in startup[0]
    assert "FALL-BACK" in startup[0] and named in startup[0], startup[0]
    stats = emulator.send_text(ADMIN_ID, ADMIN_ID, "/stats")
    reply = await emulator.wait_for_reply(ADMIN_ID, stats["message_id"])
    assert good in reply["text"] and "serving a fall-back version" in reply["text"]
    assert named in reply["text"], reply["text"]
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"])
    assert answered_digit(reply) == str(mnist.y_test[0])


def test_no_usable_model_at_start_is_a_one_line_error_naming_the_file(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = registry.current_version(model_dir)
    tflite = model_dir / version / registry.TFLITE_FILE
    tflite.write_bytes(b"\x00" * 64)  # the only version, damaged
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("HEARTBEAT_FILE", str(tmp_path / "heartbeat"))
    assert main(["run", "--model-dir", str(model_dir)]) == 2
    settings, error = capsys.readouterr().err.strip().splitlines()  # where settings came from
    assert settings.startswith("settings: ")
    assert error.startswith("error: no usable model in")
    assert str(tflite) in error
    assert TOKEN not in error


# --- /retrain whose training process dies ------------------------------------------------------


async def test_retrain_killed_while_writing_its_model_leaves_nothing_and_the_next_one_works(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    model_dir: Path,
) -> None:
    bot = await start_bot(retrain_tolerance=100.0)  # any finished candidate is promoted
    served = bot.state.classifier.version
    before = folder_listing(model_dir)
    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
    status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
    # After its last epoch the process evaluates, then writes model.keras, model.tflite and the
    # plots into its staging folder: the moment a kill leaves partial files behind.
    await emulator.wait_for(
        lambda m: m["message_id"] == status["message_id"] and "Evaluating" in m["text"],
        timeout=RETRAIN_TIMEOUT,
    )
    assert staging_folders(model_dir)
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[1]))
    bot.state.retrain.process.kill()
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"])
    assert TOP3_LINE.match(reply["text"].splitlines()[1])
    told = await emulator.wait_for(
        lambda m: (
            m.get("reply_to_message", {}).get("message_id") == command["message_id"]
            and "failed" in m.get("text", "")
        ),
        timeout=30,
    )
    assert "stopped unexpectedly" in told[0]["text"] and "keeps serving" in told[0]["text"]
    assert bot.state.retrain is None
    assert folder_listing(model_dir) == before  # not one partial file left
    assert bot.state.classifier.version == served

    again = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
    promoted = await emulator.wait_for(
        lambda m: (
            m.get("reply_to_message", {}).get("message_id") == again["message_id"]
            and "now serving" in m.get("text", "")
        ),
        timeout=RETRAIN_TIMEOUT,
    )
    new_version = registry.current_version(model_dir)
    assert new_version != served and new_version in promoted[0]["text"]
    assert bot.state.classifier.version == new_version
    assert sorted(registry.list_versions(model_dir)) == sorted([served, new_version])
    assert not staging_folders(model_dir)
