"""`digitbot bench retrain`: a user corrects real exam digits, an admin retrains; the real bot.

The scenario of issue 15, against the Bot API emulator: a user sends the bot real handwritten
digits cut from exam answer boxes (the `nsysu` part of the real-digits folder, only the sessions
of the academic years 108 and 109), presses ✅ under each right answer and ❌ plus the real digit
under each wrong one; then an admin sends `/retrain` with the bot's settings and waits for the
verdict. Reported for the model before and after: MNIST test accuracy, how many of the digits the
user corrected it reads right (those it trained on), its accuracy on the feedback store's
held-out slice (the same sessions and students, never trained on; with the corrected digits among
them), and on the sessions nobody sent (years 110 and 111: other students, other exams), read from
the photo files exactly as the bot reads them.
The end-to-end test runs the same scenario with a small training budget.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from bot import replies
from bot.app import build_application
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.state import BotState, get_state
from bot.transport.lifecycle import start_polling, stop_application
from core import registry
from core.serving import Classifier

TOKEN = "123456:RETRAIN-BENCH-TOKEN"
BOT_USERNAME = "digitbot_retrain_bot"
ADMIN_ID = 1001
USER_ID = 2002
SENT_YEARS = ("108", "109")  # exam sessions the users send; the others are only measured
PER_PERSON = 50  # digits one person sends and confirms
VERDICTS = ("now serving", "not promoted", "Retraining failed")


@dataclass(frozen=True)
class ExamDigit:
    """One labelled exam digit: the image file's bytes, its label and its exam session."""

    image: bytes
    label: int
    group: str


def load_exam_digits(folder: Path) -> tuple[list[ExamDigit], list[ExamDigit]]:
    """(sent, held out): the nsysu digits of the years in SENT_YEARS, and all the others."""
    labels = Path(folder) / "labels.csv"
    if not labels.is_file():
        raise ValueError(f"{labels} not found: point --dir at the real-digits folder")
    sent: list[ExamDigit] = []
    held_out: list[ExamDigit] = []
    with labels.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["source"] != "nsysu" or not row["label"].isdigit():
                continue
            digit = ExamDigit(
                (Path(folder) / row["path"]).read_bytes(), int(row["label"]), row["group"]
            )
            (sent if row["group"].startswith(SENT_YEARS) else held_out).append(digit)
    if not sent or not held_out:
        raise ValueError(f"{labels} has no nsysu digits of both the sent and the held-out years")
    return sent, held_out


@dataclass(frozen=True)
class ModelFigures:
    """One model's scores in the scenario."""

    version: str
    mnist: float | None
    held_out: float  # share of the held-out sessions' digits read right
    corrected_right: int  # of the digits the user corrected (trained on)
    slice_right: int  # of the store's held-out slice: the same sessions, never trained on
    slice_corrected_right: int  # of the corrected digits in that slice


@dataclass
class RetrainReport:
    """What happened: what the user did, the verdict, and both models' figures."""

    sent: int = 0
    confirmed_right: int = 0
    corrected: int = 0
    not_one_digit: int = 0  # answers with no digit or several: not corrected digit by digit
    corrected_trained: int = 0  # corrected digits outside the store's held-out slice
    slice_count: int = 0  # digits in the store's held-out slice
    slice_corrected: int = 0  # corrected digits in it
    held_out_count: int = 0
    seconds: float = 0.0  # from /retrain to the verdict
    verdict: str = ""
    before: ModelFigures | None = None
    after: ModelFigures | None = None
    settings_line: str = ""

    @property
    def promoted(self) -> bool:
        return "now serving" in self.verdict

    def lines(self) -> list[str]:
        out = [
            self.settings_line,
            f"sent {self.sent} exam digits (years {', '.join(SENT_YEARS)}): "
            f"{self.confirmed_right} confirmed right, {self.corrected} corrected, "
            f"{self.not_one_digit} not read as one digit (left alone); "
            f"{self.corrected_trained} corrected digits to learn from (the others are in the "
            "store's held-out slice)",
            f"/retrain took {self.seconds:.0f} s: {'' if self.promoted else 'NOT '}promoted",
            "| model | MNIST test | corrected digits read right | same sessions, held out "
            "(corrected among them) | held-out sessions |",
            "|---|---|---|---|---|",
        ]
        for name, figures in (("before", self.before), ("after", self.after)):
            if figures is None:
                continue
            mnist = "unknown" if figures.mnist is None else f"{figures.mnist * 100:.2f} %"
            out.append(
                f"| {name}: {figures.version} | {mnist} | {figures.corrected_right} of "
                f"{self.corrected_trained} | {_share(figures.slice_right, self.slice_count)} "
                f"({figures.slice_corrected_right} of {self.slice_corrected}) | "
                f"{figures.held_out * 100:.1f} % of {self.held_out_count} |"
            )
        return out


def _share(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f} % of {whole}" if whole else "none"


def _digit_buttons(message: dict[str, Any]) -> dict[str, str]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


async def _press(emulator: BotApiEmulator, message: dict[str, Any], user: int, text: str) -> None:
    data = _digit_buttons(message)[text]
    query = emulator.press_button(message["chat"]["id"], message["message_id"], user, data)
    await emulator.wait_for_callback_answer(query["id"])


def _is_keypad(answer: dict[str, Any], label: str, message: dict[str, Any]) -> bool:
    """`message` is `answer`, edited to show the digit buttons."""
    return (
        message["chat"]["id"] == answer["chat"]["id"]
        and message["message_id"] == answer["message_id"]
        and label in _digit_buttons(message)
    )


async def send_and_correct(
    emulator: BotApiEmulator, digits: Sequence[ExamDigit], user_id: int, report: RetrainReport
) -> None:
    """Users send the digits, PER_PERSON each (below FEEDBACK_MAX_PER_DAY), and answer the
    buttons truthfully; the first is `user_id`, the others are added after it."""
    for index, digit in enumerate(digits):
        sender = user_id + index // PER_PERSON
        if index % PER_PERSON == 0 and index:
            emulator.add_user(sender, f"Student {sender}")
        await _send_one(emulator, digit, sender, report)


async def _send_one(
    emulator: BotApiEmulator, digit: ExamDigit, user_id: int, report: RetrainReport
) -> None:
    """One person sends one digit and answers the buttons under the bot's answer."""
    photo = emulator.send_photo(user_id, user_id, digit.image)
    answer = await emulator.wait_for_reply(user_id, photo["message_id"], timeout=30)
    report.sent += 1
    read = answer["text"].split("\n", 1)[0].split()[0] if answer.get("text") else ""
    if not (read.isdigit() and len(read) == 1) or replies.button_wrong() not in _digit_buttons(
        answer
    ):
        report.not_one_digit += 1
        return
    if int(read) == digit.label:
        await _press(emulator, answer, user_id, replies.button_right())
        report.confirmed_right += 1
        return
    await _press(emulator, answer, user_id, replies.button_wrong())
    keypad = await emulator.wait_for(partial(_is_keypad, answer, str(digit.label)))
    await _press(emulator, keypad[0], user_id, str(digit.label))
    report.corrected += 1


def figures(state: BotState, held_out: Sequence[ExamDigit]) -> ModelFigures:
    """The served model's scores: MNIST from its metadata, the rest measured now."""
    classifier = state.classifier
    right = sum(classifier.classify(digit.image).number == str(digit.label) for digit in held_out)
    corrected_right = slice_right = slice_corrected_right = 0
    if state.feedback is not None:
        train, holdout = state.feedback.training_samples(), state.feedback.holdout_samples()
        corrected_right = int(_read_right(classifier, train.x, train.y)[train.corrected].sum())
        in_slice = _read_right(classifier, holdout.x, holdout.y)
        slice_right, slice_corrected_right = (
            int(in_slice.sum()),
            int(in_slice[holdout.corrected].sum()),
        )
    mnist = classifier.metadata.get("test_accuracy")
    return ModelFigures(
        version=classifier.version,
        mnist=None if mnist is None else float(mnist),
        held_out=right / len(held_out),
        corrected_right=corrected_right,
        slice_right=slice_right,
        slice_corrected_right=slice_corrected_right,
    )


def _read_right(classifier: Classifier, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which of these stored crops (uint8, ink = 255) the model reads as their label."""
    if len(labels) == 0:
        return np.zeros((0,), bool)
    predicted = classifier.predict(images.astype(np.float32) / 255.0).argmax(axis=1)
    return predicted == labels


async def retrain_and_wait(
    emulator: BotApiEmulator, admin_id: int, timeout: float, command: str = "/retrain"
) -> tuple[str, float]:
    """The admin sends `command`; -> the verdict's text and the seconds it took."""
    started = time.monotonic()
    sent = emulator.send_text(admin_id, admin_id, command)
    found = await emulator.wait_for(
        lambda m: (
            m.get("reply_to_message", {}).get("message_id") == sent["message_id"]
            and any(verdict in m.get("text", "") for verdict in VERDICTS)
        ),
        timeout=timeout,
    )
    return found[0]["text"], time.monotonic() - started


async def run_scenario(
    emulator: BotApiEmulator,
    state: BotState,
    sent: Sequence[ExamDigit],
    held_out: Sequence[ExamDigit],
    *,
    admin_id: int,
    user_id: int,
    timeout: float,
) -> RetrainReport:
    """Send, correct, /retrain, and measure before and after (a running bot and emulator)."""
    report = RetrainReport(held_out_count=len(held_out))
    await send_and_correct(emulator, sent, user_id, report)
    if state.feedback is not None:
        report.corrected_trained = int(state.feedback.training_samples().corrected.sum())
        holdout = state.feedback.holdout_samples()
        report.slice_count, report.slice_corrected = len(holdout.y), int(holdout.corrected.sum())
    loop = asyncio.get_running_loop()
    report.before = await loop.run_in_executor(None, figures, state, held_out)
    report.verdict, report.seconds = await retrain_and_wait(emulator, admin_id, timeout)
    report.after = await loop.run_in_executor(None, figures, state, held_out)
    return report


async def bench_retrain(settings: Settings, folder: Path, timeout: float) -> RetrainReport:
    """The scenario with `settings` (a private copy of its model folder and a fresh store)."""
    sent, held_out = load_exam_digits(folder)
    emulator = BotApiEmulator(TOKEN, BOT_USERNAME)
    await emulator.start("127.0.0.1", 0)
    emulator.add_user(ADMIN_ID, "Admin", "admin")
    emulator.add_user(USER_ID, "Student", "student")
    with tempfile.TemporaryDirectory(prefix="digitbot-retrain-bench-") as scratch:
        models = Path(scratch) / "models"
        version = registry.current_version(settings.model_dir)
        models.mkdir()
        shutil.copytree(Path(settings.model_dir) / version, models / version)
        (models / registry.CURRENT_FILE).write_text(version + "\n", encoding="utf-8")
        bot_settings = settings.model_copy(
            update={
                "telegram_bot_token": SecretStr(TOKEN),
                "telegram_api_url": emulator.url,
                "admin_user_ids": [ADMIN_ID],
                "model_dir": models,
                "database_url": f"sqlite:///{Path(scratch) / 'feedback.sqlite3'}",
                "data_dir": Path(scratch),
                "heartbeat_file": None,
                "flood_limit": 100_000,
                "action_flood_limit": 100_000,
                "group_user_share_per_minute": 100_000,
            }
        )
        application = build_application(bot_settings)
        try:
            await start_polling(application, timeout=1)
            report = await run_scenario(
                emulator,
                get_state(application.bot_data),
                sent,
                held_out,
                admin_id=ADMIN_ID,
                user_id=USER_ID,
                timeout=timeout,
            )
        finally:
            await stop_application(application)
            await emulator.stop()
    limit = settings.retrain_train_limit
    report.settings_line = (
        f"/retrain: {settings.retrain_epochs} epochs on "
        f"{'all of MNIST' if limit is None else f'{limit:,} MNIST images'}, user weight "
        f"{settings.retrain_user_weight:g}, user share {settings.retrain_user_share:g}, "
        f"corrected share {settings.retrain_corrected_share:g}"
    )
    return report


def run_retrain_bench(settings: Settings, folder: Path, timeout: float = 1800.0) -> int:
    """`digitbot bench retrain`: print the report; exit 1 unless the candidate was promoted."""
    report = asyncio.run(bench_retrain(settings, folder, timeout))
    for line in report.lines():
        print(line)
    print(f"verdict: {report.verdict}")
    return 0 if report.promoted else 1
