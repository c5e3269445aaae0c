"""Corrections from users, end to end: buttons, typed numbers, /forget, /stats, restarts, /retrain.

The real bot polls the Bot API emulator; users press buttons with `emulator.press_button` and the
tests read what the bot answered (answerCallbackQuery), how it edited its answer, and what the
feedback store holds. The store is an SQLite file in tmp_path; the restart test also runs on the
PostgreSQL server named by TEST_DATABASE_URL (failing under CI=true without it, else skipped).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from bot import admin_replies, replies
from bot.feedback.store import FeedbackStore
from bot.handlers.corrections import MAX_CALLBACK_BYTES, callback_data, parse_callback_data
from bot.sandbox.emulator import BotApiEmulator
from bot.transport.lifecycle import stop_application
from core import registry
from core.promotion import Comparison, Evidence, Rule
from tests.bot.conftest import (
    ADMIN_ID,
    BOT_USERNAME,
    GROUP_ID,
    OTHER_USER_ID,
    TOKEN,
    USER_ID,
    store_answer,
)
from tests.conftest import digit_photo

RETRAIN_TIMEOUT = 120.0  # one spawned 1-epoch training on a busy 2-core machine
NAMES = ("Ada", "Bob", "Cy", "ada", "bob", "cy")  # the test users' names: never in a group edit


# --- helpers -----------------------------------------------------------------------------------


def keyboard(message: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """The inline keyboard as rows of (text, callback_data)."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [[(button["text"], button["callback_data"]) for button in row] for row in rows]


def data_of(message: dict[str, Any], text: str) -> str:
    """The callback data of the button labelled `text`."""
    for row in keyboard(message):
        for label, data in row:
            if label == text:
                return data
    raise AssertionError(f"no button {text!r} in {keyboard(message)}")


def current(emulator: BotApiEmulator, chat_id: int, message_id: int) -> dict[str, Any]:
    return next(m for m in emulator.messages(chat_id) if m["message_id"] == message_id)


async def edited(
    emulator: BotApiEmulator, message: dict[str, Any], check: Any, timeout: float = 10.0
) -> dict[str, Any]:
    """Wait until the bot's message satisfies `check` (after an edit); return it."""
    chat_id, message_id = message["chat"]["id"], message["message_id"]
    found = await emulator.wait_for(
        lambda m: m["chat"]["id"] == chat_id and m["message_id"] == message_id and check(m),
        timeout=timeout,
    )
    return found[0]


async def press(
    emulator: BotApiEmulator, message: dict[str, Any], user_id: int, data: str
) -> dict[str, Any]:
    """Press a button and return the bot's answerCallbackQuery parameters."""
    query = emulator.press_button(message["chat"]["id"], message["message_id"], user_id, data)
    return await emulator.wait_for_callback_answer(query["id"])


async def send_privately(emulator: BotApiEmulator, image: bytes) -> dict[str, Any]:
    """USER_ID sends `image` to the bot in private; the bot's answer to it."""
    photo = emulator.send_photo(USER_ID, USER_ID, image)
    return await emulator.wait_for_reply(USER_ID, photo["message_id"])


def sample_id_of(message: dict[str, Any]) -> int:
    action = parse_callback_data(data_of(message, replies.button_right()))
    assert action is not None
    return action.sample_id


def number_photo(digits: list[np.ndarray], scale: int = 140, gap: int = 60) -> bytes:
    """Several MNIST digits side by side on a page: a number."""
    page = Image.new("L", (len(digits) * (scale + gap) + gap, scale + 160), 255)
    for index, digit in enumerate(digits):
        ink = Image.fromarray(255 - digit).resize((scale, scale), Image.Resampling.BICUBIC)
        page.paste(ink, (gap + index * (scale + gap), 80))
    buffer = io.BytesIO()
    page.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


async def bot_api(emulator: BotApiEmulator, method: str, **params: Any) -> dict[str, Any]:
    """Call the emulator as the bot would (to leave a message the running bot did not make)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emulator.url}/bot{TOKEN}/{method}", json=params) as response,
    ):
        body = await response.json()
    assert body["ok"], body
    return body["result"]


async def stop(bot: Any) -> None:
    """Stop a running bot the way run_polling does on Ctrl-C (the store is closed last)."""
    await stop_application(bot.application)


def other_digit(digit: str) -> str:
    return str((int(digit) + 1) % 10)


# --- pure parts --------------------------------------------------------------------------------


def test_callback_data_round_trips_and_fits_64_bytes() -> None:
    biggest = 2**63 - 1  # the largest BIGINT sample id
    longest = "9" * 12
    cases: list[tuple[str, dict[str, Any]]] = [
        ("ok", {}),
        ("no", {}),
        ("back", {}),
        ("d", {"number": "7"}),
        ("e", {"number": longest}),
        ("n", {"number": longest}),
        ("p", {"number": longest, "position": 11}),
    ]
    for kind, fields in cases:
        data = callback_data(biggest, kind, **fields)
        assert len(data.encode()) <= MAX_CALLBACK_BYTES
        action = parse_callback_data(data)
        assert action is not None and action.sample_id == biggest and action.kind == kind
        assert action.number == fields.get("number") and action.position == fields.get("position")
    for garbage in [
        "",
        "fb",
        "fb:0:ok",
        "fb:12:maybe",
        "fb:12:d:77",
        "fb:12:p:3:123",
        "fb:12:e:1234567890123",
        "fb:-1:ok",
        "xx:12:ok",
        "fb:12:ok:extra",
    ]:
        assert parse_callback_data(garbage) is None, garbage
    with pytest.raises(ValueError, match="cannot encode"):
        callback_data(5, "p", number="12", position=2)


def test_footers_replace_each_other_and_never_touch_the_answer() -> None:
    answer = "<b>7</b>\n7: 99.0%  1: 0.5%  2: 0.1%"
    asked = replies.with_footer(answer, replies.digit_question())
    assert asked.startswith(answer + "\n\n")
    done = replies.with_footer(asked, replies.confirmed_footer("7", "1"))
    assert done == answer + "\n\n✏ Corrected: it is <b>1</b>, not 7."
    assert replies.with_footer(done, None) == answer


def comparison(new_user: float = 0.80, holdout_count: int = 40) -> Comparison:
    return Comparison(
        candidate=Evidence(mnist=0.990, user=new_user, corrected_right=17),
        current=Evidence(mnist=0.991, user=0.85, corrected_right=0),
        rule=Rule(mnist_tolerance=0.2, user_tolerance=2.0, user_min_holdout=20),
        holdout_count=holdout_count,
        corrected_count=21,
        user_digits=160,
        user_weight=3.0,
    )


def test_the_retrain_report_shows_both_models_side_by_side() -> None:
    rejected = admin_replies.retrain_rejected(comparison())
    assert rejected.startswith(
        "❌ Candidate not promoted: accuracy on users' photos 80.0% against 85.0%"
    )
    assert "MNIST test accuracy: new 99.00%, current 99.10% (tolerance 0.2 points)" in rejected
    assert "Digits users corrected, now read right: new 17 of 21, current 0." in rejected
    promoted = admin_replies.retrain_promoted("v2", comparison(new_user=0.9, holdout_count=5))
    assert (
        "Accuracy on users' photos (5 held-out digits): new 90.0%, previous 85.0% "
        "(tolerance 2 points; not enforced below 20 held-out digits"
    ) in promoted
    assert "Trained with 160 confirmed user digits (weight 3)." in promoted


# --- private chats -----------------------------------------------------------------------------


async def test_private_wrong_then_the_real_digit_edits_the_answer_and_stores_it(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    answer = await send_privately(emulator, digit_photo(mnist.x_test[0]))
    predicted = answer["text"].split()[0]
    assert [[label for label, _ in row] for row in keyboard(answer)] == [
        [replies.button_right(), replies.button_wrong()]
    ]
    sample_id = sample_id_of(answer)
    stored = bot.state.feedback.get(sample_id)
    assert stored.predicted == predicted and stored.confirmed is None

    reply = await press(emulator, answer, USER_ID, data_of(answer, replies.button_wrong()))
    assert reply["text"] is None  # answered, nothing to say
    keypad = await edited(emulator, answer, lambda m: len(keyboard(m)) == 3)
    assert [label for row in keyboard(keypad)[:2] for label, _ in row] == list("0123456789")
    assert keypad["text"].endswith(replies.digit_question())

    await press(emulator, keypad, USER_ID, data_of(keypad, replies.button_back()))
    back = await edited(emulator, answer, lambda m: len(keyboard(m)) == 1)
    assert back["text"] == answer["text"]  # the question is gone again

    await press(emulator, back, USER_ID, data_of(back, replies.button_wrong()))
    keypad = await edited(emulator, answer, lambda m: len(keyboard(m)) == 3)
    real = other_digit(predicted)
    reply = await press(emulator, keypad, USER_ID, data_of(keypad, real))
    assert reply["text"] == replies.thanks(predicted, real)
    final = await edited(emulator, answer, lambda m: "Corrected" in m["text"])
    assert final["text"].startswith(answer["text"] + "\n\n")  # the answer itself stays
    assert final["text"].endswith(f"Corrected: it is {real}, not {predicted}.")
    assert "reply_markup" not in final
    assert any(entity["type"] == "bold" for entity in final["entities"])  # HTML kept
    stored = bot.state.feedback.get(sample_id)
    assert stored.confirmed == real and stored.correct is False
    assert stored.model_version == bot.state.classifier.version
    assert stored.chat_type == "private"
    training = bot.state.feedback.training_samples(include_holdout=True)
    assert training.y.tolist() == [int(real)] and training.x.shape == (1, 28, 28)


async def test_right_button_confirms_and_forget_makes_remaining_buttons_stale(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    answers = []
    for index in range(2):
        answers.append(await send_privately(emulator, digit_photo(mnist.x_test[index])))
    first, second = answers
    predicted = first["text"].split()[0]
    reply = await press(emulator, first, USER_ID, data_of(first, replies.button_right()))
    assert reply["text"] == f"Thanks! Confirmed: {predicted}."
    done = await edited(emulator, first, lambda m: "reply_markup" not in m)
    assert done["text"].endswith(f"✅ Confirmed: it is {predicted}.")
    stored = bot.state.feedback.get(sample_id_of(first))
    assert stored.confirmed == predicted and stored.correct is True

    # /forget asks first; "cancel" deletes nothing.
    forget = emulator.send_text(USER_ID, USER_ID, "/forget")
    question = await emulator.wait_for_reply(USER_ID, forget["message_id"])
    assert question["text"] == replies.forget_question()
    await press(emulator, question, USER_ID, data_of(question, replies.button_forget_no()))
    cancelled = await edited(emulator, question, lambda m: "reply_markup" not in m)
    assert cancelled["text"] == replies.forget_cancelled()
    assert bot.state.feedback.get(sample_id_of(first)) is not None
    forget = emulator.send_text(USER_ID, USER_ID, "/forget")
    question = await emulator.wait_for_reply(USER_ID, forget["message_id"])
    await press(emulator, question, USER_ID, data_of(question, replies.button_forget_yes()))
    done = await edited(emulator, question, lambda m: m["text"].startswith("Done"))
    assert done["text"].startswith("Done: 2 items deleted")
    assert bot.state.feedback.get(sample_id_of(first)) is None
    assert bot.state.feedback.stats().collected == 0

    # The second answer still shows its buttons; they name a sample that is gone.
    reply = await press(emulator, second, USER_ID, data_of(second, replies.button_right()))
    assert reply["text"] == replies.stale_answer()
    await edited(emulator, second, lambda m: "reply_markup" not in m)
    again = emulator.send_text(USER_ID, USER_ID, "/forget")
    question = await emulator.wait_for_reply(USER_ID, again["message_id"])
    await press(emulator, question, USER_ID, data_of(question, replies.button_forget_yes()))
    done = await edited(emulator, question, lambda m: "reply_markup" not in m)
    assert "nothing was deleted" in done["text"]


async def test_in_a_group_only_who_sent_forget_can_confirm_it(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    bot = await start_bot()
    await send_privately(emulator, digit_photo(mnist.x_test[0]))
    forget = emulator.send_text(GROUP_ID, USER_ID, f"/forget@{BOT_USERNAME}")
    question = await emulator.wait_for_reply(GROUP_ID, forget["message_id"])
    yes = data_of(question, replies.button_forget_yes())
    refused = await press(emulator, question, OTHER_USER_ID, yes)
    assert refused["text"] == replies.forget_not_yours() and refused["show_alert"]
    assert bot.state.feedback.stats().collected == 1
    await press(emulator, question, USER_ID, yes)
    done = await edited(emulator, question, lambda m: "reply_markup" not in m)
    assert done["text"].startswith("Done: 1 item deleted")
    assert bot.state.feedback.stats().collected == 0


async def test_unknown_and_forged_buttons_are_answered_and_change_nothing(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    answer = await send_privately(emulator, digit_photo(mnist.x_test[0]))
    sample_id = sample_id_of(answer)
    # A button left by an older bot version, and one whose data names another message's sample.
    old = await bot_api(
        emulator,
        "sendMessage",
        chat_id=USER_ID,
        text="old menu",
        reply_markup={"inline_keyboard": [[{"text": "old", "callback_data": "menu:v1:7"}]]},
    )
    forged = await bot_api(
        emulator,
        "sendMessage",
        chat_id=USER_ID,
        text="x",
        reply_markup={"inline_keyboard": [[{"text": "ok", "callback_data": f"fb:{sample_id}:ok"}]]},
    )
    reply = await press(emulator, old, USER_ID, "menu:v1:7")
    assert reply["text"] == replies.unknown_button()
    reply = await press(emulator, forged, USER_ID, f"fb:{sample_id}:ok")
    assert reply["text"] == replies.stale_answer()
    assert bot.state.feedback.get(sample_id).confirmed is None
    # The real answer still works afterwards.
    reply = await press(emulator, answer, USER_ID, data_of(answer, replies.button_right()))
    assert reply["text"].startswith("Thanks!")


async def test_a_number_is_corrected_digit_by_digit(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    answer = await send_privately(emulator, number_photo(list(mnist.x_test[:3])))
    predicted = answer["text"].split()[0]
    assert len(predicted) == 3, answer["text"]
    await press(emulator, answer, USER_ID, data_of(answer, replies.button_wrong()))
    editor = await edited(emulator, answer, lambda m: replies.number_question() in m["text"])
    assert [label for label, _ in keyboard(editor)[0]] == list(predicted)
    assert [label for label, _ in keyboard(editor)[-1]] == [replies.button_back()]  # no change yet

    await press(emulator, editor, USER_ID, keyboard(editor)[0][1][1])  # the 2nd digit
    keypad = await edited(emulator, answer, lambda m: "digit is in position 2" in m["text"])
    real_digit = other_digit(predicted[1])
    await press(emulator, keypad, USER_ID, data_of(keypad, real_digit))
    real = predicted[0] + real_digit + predicted[2]
    editor = await edited(
        emulator,
        answer,
        lambda m: replies.number_question() in m["text"] and len(keyboard(m)[-1]) == 2,
    )
    assert [label for label, _ in keyboard(editor)[0]] == [
        predicted[0],
        f"«{real_digit}»",
        predicted[2],
    ]
    reply = await press(emulator, editor, USER_ID, data_of(editor, replies.button_save(real)))
    assert reply["text"] == replies.thanks(predicted, real)
    final = await edited(emulator, answer, lambda m: "reply_markup" not in m)
    assert final["text"].endswith(f"Corrected: it is {real}, not {predicted}.")
    training = bot.state.feedback.training_samples(include_holdout=True)
    assert training.y.tolist() == [int(digit) for digit in real]


async def test_a_typed_number_corrects_an_answer_and_replies_elsewhere_get_hints(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    answer = await send_privately(emulator, number_photo(list(mnist.x_test[3:5])))
    predicted = answer["text"].split()[0]
    real = other_digit(predicted[0]) + predicted[1:]
    typed = emulator.send_text(
        USER_ID, USER_ID, " ".join(real), reply_to_message_id=answer["message_id"]
    )
    reply = await emulator.wait_for_reply(USER_ID, typed["message_id"])
    assert reply["text"] == replies.typed_saved(predicted, real)
    final = await edited(emulator, answer, lambda m: "reply_markup" not in m)
    assert final["text"].endswith(f"Corrected: it is {real}, not {predicted}.")
    assert bot.state.feedback.get(sample_id_of(answer)).confirmed == real

    # A number replied to the bot's other messages, or to one's own, is not a correction.
    help_message = emulator.send_text(USER_ID, USER_ID, "/help")
    help_reply = await emulator.wait_for_reply(USER_ID, help_message["message_id"])
    to_help = emulator.send_text(
        USER_ID, USER_ID, "5", reply_to_message_id=help_reply["message_id"]
    )
    assert (await emulator.wait_for_reply(USER_ID, to_help["message_id"]))["text"] == (
        replies.typed_not_an_answer()
    )
    to_self = emulator.send_text(USER_ID, USER_ID, "5", reply_to_message_id=typed["message_id"])
    assert (await emulator.wait_for_reply(USER_ID, to_self["message_id"]))["text"] == (
        replies.private_text_hint()
    )
    assert bot.state.feedback.stats().confirmed == 1


async def test_a_failing_store_never_costs_the_answer(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot()

    def broken(writes: Any) -> list[Any]:
        raise OSError("disk full")

    monkeypatch.setattr(bot.state.feedback, "transact", broken)
    answer = await send_privately(emulator, digit_photo(mnist.x_test[0]))
    assert answer["text"].split()[0] == str(int(mnist.y_test[0]))
    assert "reply_markup" not in answer  # no buttons for an answer that was not recorded
    assert "could not record an answer" in caplog.text and "disk full" in caplog.text


async def test_help_says_what_is_kept_and_why(start_bot: Any, emulator: BotApiEmulator) -> None:
    await start_bot()
    message = emulator.send_text(USER_ID, USER_ID, "/help")
    text = (await emulator.wait_for_reply(USER_ID, message["message_id"]))["text"]
    assert "28x28 digit crops" in text and "never your photo" in text
    assert "salted hash of your user id" in text and "/forget" in text
    assert "retrain" in text  # why it is kept


# --- groups ------------------------------------------------------------------------------------


async def test_group_first_confirmation_counts_later_ones_are_acknowledged_nobody_named(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    bot = await start_bot()
    photo = emulator.send_photo(
        GROUP_ID, USER_ID, digit_photo(mnist.x_test[1]), caption=f"@{BOT_USERNAME}"
    )
    answer = await emulator.wait_for_reply(GROUP_ID, photo["message_id"])
    predicted = answer["text"].split()[0]
    # Someone other than the photo's author opens the keypad.
    reply = await press(emulator, answer, OTHER_USER_ID, data_of(answer, replies.button_wrong()))
    assert reply["text"] is None
    keypad = await edited(emulator, answer, lambda m: len(keyboard(m)) == 3)
    # Two people tap a digit before the bot has updated the message: both taps reach it.
    first_choice, second_choice = other_digit(predicted), other_digit(other_digit(predicted))
    queries = [
        emulator.press_button(
            GROUP_ID, keypad["message_id"], OTHER_USER_ID, data_of(keypad, first_choice)
        ),
        emulator.press_button(
            GROUP_ID, keypad["message_id"], ADMIN_ID, data_of(keypad, second_choice)
        ),
    ]
    answers = [(await emulator.wait_for_callback_answer(query["id"]))["text"] for query in queries]
    stored = bot.state.feedback.get(sample_id_of(answer))
    assert stored.confirmed in (first_choice, second_choice)
    assert sorted(answers) == sorted(
        [replies.thanks(predicted, stored.confirmed), replies.already_confirmed(stored.confirmed)]
    )
    final = await edited(emulator, answer, lambda m: "reply_markup" not in m)
    assert final["text"].endswith(f"Corrected: it is {stored.confirmed}, not {predicted}.")
    assert not any(name in final["text"] for name in NAMES)
    # A later typed correction is acknowledged, not stored.
    late = emulator.send_text(
        GROUP_ID, USER_ID, predicted, reply_to_message_id=answer["message_id"]
    )
    reply = await emulator.wait_for_reply(GROUP_ID, late["message_id"])
    assert reply["text"] == replies.already_confirmed(stored.confirmed)
    assert bot.state.feedback.get(sample_id_of(answer)).confirmed == stored.confirmed
    assert stored.chat_type == "supergroup"  # the emulator's groups are supergroups

    # The right button in a group, pressed by a third person.
    photo = emulator.send_photo(
        GROUP_ID, OTHER_USER_ID, digit_photo(mnist.x_test[2]), caption="/predict"
    )
    answer = await emulator.wait_for_reply(GROUP_ID, photo["message_id"])
    reply = await press(emulator, answer, USER_ID, data_of(answer, replies.button_right()))
    assert reply["text"].startswith("Thanks! Confirmed")
    final = await edited(emulator, answer, lambda m: "Confirmed" in m["text"])
    assert not any(name in final["text"] for name in NAMES)


# --- durability, figures -----------------------------------------------------------------------


async def test_samples_and_buttons_survive_a_restart(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    database_url: str,
) -> None:
    first = await start_bot(database_url=database_url)
    answers = []
    for index in range(2):
        answers.append(await send_privately(emulator, digit_photo(mnist.x_test[index])))
    predicted = answers[0]["text"].split()[0]
    real = other_digit(predicted)
    await press(emulator, answers[0], USER_ID, data_of(answers[0], replies.button_wrong()))
    keypad = await edited(emulator, answers[0], lambda m: len(keyboard(m)) == 3)
    await press(emulator, keypad, USER_ID, data_of(keypad, real))
    await edited(emulator, answers[0], lambda m: "reply_markup" not in m)
    await stop(first)
    assert first.state.feedback is None  # closed on shutdown

    second = await start_bot(database_url=database_url)
    assert second.state.feedback.stats().confirmed == 1
    # A button sent by the previous process still works.
    reply = await press(emulator, answers[1], USER_ID, data_of(answers[1], replies.button_right()))
    assert reply["text"].startswith("Thanks! Confirmed")
    stats = emulator.send_text(ADMIN_ID, ADMIN_ID, "/stats")
    text = (await emulator.wait_for_reply(ADMIN_ID, stats["message_id"]))["text"]
    assert "Corrections from users" in text
    assert "Answers recorded: 2; confirmed: 2 (1 right, 1 wrong)" in text
    version = second.state.classifier.version
    assert f"Live accuracy of {version}: 50.0% on 2 confirmed answers" in text
    assert f"Mistakes users corrected: {real} read as {predicted} ×1" in text


# --- /retrain ----------------------------------------------------------------------------------


async def test_retrain_learns_from_confirmed_digits_and_reports_both_accuracies(
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
    model_dir: Path,
) -> None:
    bot = await start_bot(
        retrain_tolerance=100.0, retrain_user_tolerance=100.0, feedback_holdout_fraction=0.5
    )
    for index in range(12):
        answer = await send_privately(emulator, digit_photo(mnist.x_test[index]))
        label = str(int(mnist.y_test[index]))
        if answer["text"].split()[0] == label:
            await press(emulator, answer, USER_ID, data_of(answer, replies.button_right()))
        else:
            await press(emulator, answer, USER_ID, data_of(answer, replies.button_wrong()))
            keypad = await edited(emulator, answer, lambda m: len(keyboard(m)) == 3)
            await press(emulator, keypad, USER_ID, data_of(keypad, label))
    store = bot.state.feedback
    training, holdout = store.training_samples(), store.holdout_samples()
    assert len(training.y) + len(holdout.y) == 12
    assert len(training.y) > 0 and len(holdout.y) > 0, "the split should give both parts"

    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
    status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
    assert f"+ {len(training.y)} confirmed user digit" in status["text"]
    assert f"{len(holdout.y)} more user digit" in status["text"]
    result = await emulator.wait_for(
        lambda m: (
            m.get("reply_to_message", {}).get("message_id") == command["message_id"]
            and "now serving" in m.get("text", "")
        ),
        timeout=RETRAIN_TIMEOUT,
    )
    text = result[0]["text"]
    metadata = registry.read_metadata(model_dir)
    assert metadata["user_samples"] == len(training.y)
    assert metadata["user_holdout_count"] == len(holdout.y)
    assert f"MNIST test accuracy: new {metadata['test_accuracy'] * 100:.2f}%, previous " in text
    assert (
        f"Accuracy on users' photos ({len(holdout.y)} held-out digit"
        f"{'' if len(holdout.y) == 1 else 's'}): new {metadata['user_accuracy'] * 100:.1f}%,"
        " previous "
    ) in text
    assert "previous unknown" not in text
    assert f"Trained with {len(training.y)} confirmed user digit" in text
    assert bot.state.classifier.version == metadata["version"]


# --- the command line --------------------------------------------------------------------------


def test_feedback_cli_prints_the_stats_figures_and_exports_mnist_format(
    tmp_path: Path,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    version = registry.current_version(model_dir)
    crops = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    with FeedbackStore(url, "cli-salt") as store:
        for predicted, crop_slice, confirmed in (("7", crops[:1], "1"), ("42", crops[1:], None)):
            sample_id = store_answer(
                store,
                crops=crop_slice,
                predicted=predicted,
                confidences=[0.9] * len(predicted),
                model_version=version,
                chat_type="private",
                chat_id=5,
                user_id=5,
            )
            store.confirm(user_id=5, sample_id=sample_id, confirmed=confirmed)
        store_answer(
            store,
            crops=crops[:1],
            predicted="3",
            confidences=[0.5],
            model_version="old",
            chat_type="group",
            chat_id=-6,
            user_id=6,
        )
        expected = admin_replies.feedback_stats(
            store.stats(), store.stats(model_version=version), version, html_format=False
        )
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FEEDBACK_SALT", "cli-salt")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["feedback", "stats", "--model-dir", str(model_dir)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == expected
    assert "Answers recorded: 3; confirmed: 2 (1 right, 1 wrong)" in printed
    assert f"Live accuracy of {version}: 50.0% on 2 confirmed answers" in printed
    assert "Mistakes users corrected: 1 read as 7 ×1" in printed
    assert "<b>" not in printed

    target = tmp_path / "out" / "user_digits.npz"
    assert main(["feedback", "export", str(target), "--database-url", url]) == 0
    written = re.search(r"(\d+) training and (\d+) test digits", capsys.readouterr().out)
    assert written is not None and int(written[1]) + int(written[2]) == 3
    with np.load(target) as exported:
        assert sorted(exported.files) == ["x_test", "x_train", "y_test", "y_train"]
        total = len(exported["y_train"]) + len(exported["y_test"])
        assert total == 3 and exported["x_train"].dtype == np.uint8
        assert sorted(exported["y_train"].tolist() + exported["y_test"].tolist()) == [1, 2, 4]


async def test_stats_without_any_feedback_says_so(
    start_bot: Any,
    emulator: BotApiEmulator,
) -> None:
    bot = await start_bot()
    stats = emulator.send_text(ADMIN_ID, ADMIN_ID, "/stats")
    text = (await emulator.wait_for_reply(ADMIN_ID, stats["message_id"]))["text"]
    assert "Answers recorded: 0; confirmed: 0 (0 right, 0 wrong)" in text
    assert f"Live accuracy of {bot.state.classifier.version}: no confirmed answers yet" in text
