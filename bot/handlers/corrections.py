"""Corrections from users: the buttons under every answer, typed corrections, /forget, figures.

Every answer that found digits is recorded in the feedback store (bot/feedback/store.py) before it
is sent, so that its buttons can carry the sample id; the answer's message id is linked right after.
Callback data (Telegram allows 64 bytes; the longest here is about 40):

    fb:<id>:ok                the answer is right
    fb:<id>:no                it is wrong: a 0-9 keypad (one digit) or the number editor
    fb:<id>:back              back to right / wrong
    fb:<id>:d:<digit>         one digit: this is the real one
    fb:<id>:e:<draft>         the number editor, showing the number as corrected so far
    fb:<id>:p:<pos>:<draft>   a 0-9 keypad for one position of the number
    fb:<id>:n:<draft>         save the corrected number

The draft travels in the callback data, so the editor keeps no state in the bot and works across
restarts and replicas. A number can also be corrected by replying to the answer with it. Clients
can send any callback data, so a press counts only if the store's sample for the pressed message
is the one the data names. Every callback query is answered, stale and unknown ones included.
Store calls run in worker threads (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest, TelegramError

from bot import admin_replies, replies
from bot.feedback.groupcommit import GroupCommit
from bot.feedback.salts import LEGACY_DEFAULT_SALT
from bot.feedback.samples import CHAT_TYPES, Confirmation, ConfirmStatus, Sample
from bot.feedback.schema import MAX_DIGITS
from bot.feedback.store import FeedbackStore, open_store
from bot.state import BotContext, BotState
from core.serving import Classification

logger = logging.getLogger(__name__)

PREFIX = "fb"
MAX_CALLBACK_BYTES = 64
LINK_WAIT_SECONDS = 5.0  # how long a press may wait for its answer's message id to be stored
POSITIONS_PER_ROW = 6
# "2026" or "2 0 2 6", any script's digits (normalised by `typed_number`); one character class
# after the first digit, so a long reply is matched in linear time (no backtracking).
TYPED_NUMBER = re.compile(r"^\s*\d[\d\s]*$")
_CALLBACK = re.compile(
    rf"^{PREFIX}:(?P<id>[1-9]\d{{0,18}}):(?:(?P<simple>ok|no|back)|d:(?P<digit>\d)|"
    r"(?P<kind>[en]):(?P<draft>\d{1,12})|p:(?P<position>\d{1,2}):(?P<pdraft>\d{1,12}))$"
)


@dataclass(frozen=True)
class ButtonAction:
    """One parsed callback: what was pressed for which sample."""

    sample_id: int
    kind: str  # ok, no, back, d, e, p, n
    number: str | None = None  # the digit (d) or the draft number (e, p, n)
    position: int | None = None  # p: the position being changed, 0 = leftmost


@dataclass(frozen=True)
class Outcome:
    """What to do after a press: the notice for the presser, then the new answer message."""

    notice: str | None = None
    alert: bool = False  # show the notice as a dialog instead of a passing toast
    edit: bool = False  # replace the answer's text and keyboard with `text` and `keyboard`
    text: str | None = None
    keyboard: InlineKeyboardMarkup | None = None
    remove_keyboard: bool = False  # only drop the keyboard (the answer is no longer known)


# --- callback data and keyboards (pure) --------------------------------------------------------


def callback_data(
    sample_id: int, kind: str, *, number: str | None = None, position: int | None = None
) -> str:
    """Encode one button; ValueError if it would not be a valid, parseable callback."""
    if kind in ("ok", "no", "back"):
        data = f"{PREFIX}:{sample_id}:{kind}"
    elif kind == "p":
        data = f"{PREFIX}:{sample_id}:p:{position}:{number}"
    else:
        data = f"{PREFIX}:{sample_id}:{kind}:{number}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES or parse_callback_data(data) is None:
        raise ValueError(f"cannot encode button {kind!r} for sample {sample_id}: {data!r}")
    return data


def parse_callback_data(data: str) -> ButtonAction | None:
    """Decode a button's data; None for anything that is not a well-formed correction button."""
    match = _CALLBACK.match(data)
    if match is None:
        return None
    sample_id = int(match["id"])
    if match["simple"]:
        return ButtonAction(sample_id, match["simple"])
    if match["digit"] is not None:
        return ButtonAction(sample_id, "d", number=match["digit"])
    if match["kind"]:
        return ButtonAction(sample_id, match["kind"], number=match["draft"])
    position = int(match["position"])
    if position >= len(match["pdraft"]):
        return None
    return ButtonAction(sample_id, "p", number=match["pdraft"], position=position)


def _button(text: str, sample_id: int, kind: str, **fields: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=callback_data(sample_id, kind, **fields))


def answer_keyboard(sample_id: int) -> InlineKeyboardMarkup:
    """The compact buttons under every answer."""
    return InlineKeyboardMarkup(
        [
            [
                _button(replies.button_right(), sample_id, "ok"),
                _button(replies.button_wrong(), sample_id, "no"),
            ]
        ]
    )


def _digit_rows(make: Callable[[str], InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    return [[make(str(digit)) for digit in range(start, start + 5)] for start in (0, 5)]


def digit_keypad(sample_id: int) -> InlineKeyboardMarkup:
    """0-9 for a one-digit answer: pressing a digit saves it."""
    rows = _digit_rows(lambda digit: _button(digit, sample_id, "d", number=digit))
    return InlineKeyboardMarkup([*rows, [_button(replies.button_back(), sample_id, "back")]])


def number_editor(sample_id: int, predicted: str, draft: str) -> InlineKeyboardMarkup:
    """One button per digit of the number (tap to change it), then save and back."""
    if len(draft) != len(predicted):
        raise ValueError("the draft must have as many digits as the answer")
    positions = [
        _button(
            replies.button_position(digit, digit != predicted[position]),
            sample_id,
            "p",
            number=draft,
            position=position,
        )
        for position, digit in enumerate(draft)
    ]
    rows = [
        positions[start : start + POSITIONS_PER_ROW]
        for start in range(0, len(positions), POSITIONS_PER_ROW)
    ]
    last = [_button(replies.button_back(), sample_id, "back")]
    if draft != predicted:
        last.insert(0, _button(replies.button_save(draft), sample_id, "n", number=draft))
    return InlineKeyboardMarkup([*rows, last])


def position_keypad(sample_id: int, position: int, draft: str) -> InlineKeyboardMarkup:
    """0-9 for one position of the number; pressing a digit goes back to the editor."""

    def choose(digit: str) -> InlineKeyboardButton:
        changed = draft[:position] + digit + draft[position + 1 :]
        return _button(digit, sample_id, "e", number=changed)

    rows = _digit_rows(choose)
    return InlineKeyboardMarkup(
        [*rows, [_button(replies.button_back(), sample_id, "e", number=draft)]]
    )


def confirmation_outcome(
    result: Confirmation, store: FeedbackStore, answer_html: str, *, own_notice: bool = True
) -> Outcome:
    """What a confirm call means for the presser and for the answer message."""
    if result.status is ConfirmStatus.NOT_FOUND:
        return Outcome(notice=replies.stale_answer(), remove_keyboard=True)
    if result.status is ConfirmStatus.CAPPED:
        return Outcome(
            notice=replies.confirmations_capped(
                store.max_confirmations_per_day, store.max_confirmations_total
            ),
            alert=True,
        )
    predicted = result.predicted or ""
    confirmed = result.confirmed or ""
    if result.status is ConfirmStatus.CONFIRMED:
        notice = replies.thanks(predicted, confirmed) if own_notice else None
    else:
        notice = replies.already_confirmed(confirmed)
    footer = replies.confirmed_footer(predicted, confirmed)
    # An answer whose text is unknown (too old to be sent to the bot) keeps its text.
    return Outcome(
        notice=notice, edit=bool(answer_html), text=replies.with_footer(answer_html, footer)
    )


# --- the store's life and the answers ----------------------------------------------------------


async def open_feedback(state: BotState) -> None:
    """Open (create or migrate) the store named by DATABASE_URL; called once by post_init."""
    settings = state.settings
    store = await asyncio.to_thread(open_store, settings)
    state.feedback = store
    state.store_writes = GroupCommit(store)
    logger.info("feedback store: %s", store.url.render_as_string(hide_password=True))
    salt = settings.feedback_salt
    if salt is not None and salt.get_secret_value() == LEGACY_DEFAULT_SALT:
        logger.warning(
            "FEEDBACK_SALT is the old public default; unset it (a random salt is then made) "
            "or set a long random secret, so that stored user hashes cannot be recomputed"
        )


async def close_feedback(state: BotState) -> None:
    """Close the store's connections; called by post_shutdown (safe to call twice)."""
    store, state.feedback = state.feedback, None
    writes, state.store_writes = state.store_writes, None
    if writes is not None:
        await writes.close()
    if store is not None:
        await asyncio.to_thread(store.close)


async def record_answer(
    state: BotState, image_message: Message, classification: Classification
) -> int | None:
    """Store the served answer (crops, number, confidences, ids); None if nothing was stored.

    A store failure never costs the user the answer: it is logged and the answer goes out
    without buttons.
    """
    store, writes = state.feedback, state.store_writes
    chat = image_message.chat
    if store is None or writes is None or not classification.digits or chat.type not in CHAT_TYPES:
        return None
    sender = image_message.from_user
    try:
        sample_id = await writes.write(
            store.recording(
                crops=[digit.crop for digit in classification.digits],
                predicted=classification.number,
                confidences=[digit.confidence for digit in classification.digits],
                model_version=classification.model_version,
                chat_type=chat.type,
                chat_id=chat.id,
                # The photo's author contributed the crops, also when someone else asked /predict.
                user_id=sender.id if sender else chat.id,
            )
        )
    except Exception:
        logger.exception("could not record an answer in the feedback store")
        return None
    state.pending_links[sample_id] = asyncio.Event()
    return sample_id


async def send_answer(
    state: BotState,
    sample_id: int | None,
    send: Callable[[InlineKeyboardMarkup | None], Awaitable[Message]],
    answered: Message | None = None,
) -> None:
    """Send the answer (with buttons when it was recorded), then link its message id. With
    `answered` (the image, when this is its last answer), tell `state.on_answered` first."""
    if sample_id is None:
        await send(None)
        await tell_answered(state, answered)
        return
    try:
        sent = await send(answer_keyboard(sample_id))
        await tell_answered(state, answered)
        store, writes = state.feedback, state.store_writes
        if store is not None and writes is not None:
            try:
                await writes.write(store.linking(sample_id, sent.message_id))
            except Exception:
                logger.exception(
                    "could not link answer %s to sample %s", sent.message_id, sample_id
                )
    finally:
        event = state.pending_links.pop(sample_id, None)
        if event is not None:
            event.set()


async def tell_answered(state: BotState, answered: Message | None) -> None:
    if answered is not None and state.on_answered is not None:
        await state.on_answered(answered)


async def find_pressed(
    state: BotState, store: FeedbackStore, chat_id: int, message_id: int, sample_id: int
) -> Sample | None:
    """The sample behind the pressed message if it is the one the button names, else None."""
    sample = await asyncio.to_thread(store.find, chat_id, message_id)
    if sample is None or sample.sample_id != sample_id:
        # Perhaps pressed before the message id was stored (a very quick press): wait for the
        # link if it is still pending, then look again (it may have completed meanwhile).
        pending = state.pending_links.get(sample_id)
        if pending is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.wait(), LINK_WAIT_SECONDS)
        sample = await asyncio.to_thread(store.find, chat_id, message_id)
    return sample if sample is not None and sample.sample_id == sample_id else None


async def wait_for_links(state: BotState) -> None:
    """Wait (briefly) until every answer being sent now has its message id stored."""
    events = list(state.pending_links.values())
    if events:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(event.wait() for event in events)), LINK_WAIT_SECONDS
            )


# --- callbacks ---------------------------------------------------------------------------------


async def on_button(update: Update, context: BotContext) -> None:
    """Any inline button: act on it, always answer the query, then update the answer message."""
    query = update.callback_query
    if query is None:
        return
    try:
        outcome = await press(context.state, query)
    except Exception:  # the presser still gets an answer; the error is logged with its data
        logger.exception(
            "button %r in chat %s failed",
            query.data,
            query.message.chat.id if query.message else None,
        )
        outcome = Outcome(notice=replies.something_went_wrong())
    try:
        await query.answer(outcome.notice, show_alert=outcome.alert)
    except TelegramError as error:  # e.g. "query is too old": nothing left to answer
        logger.warning("could not answer callback query %s: %s", query.id, error)
    message = query.message
    if message is None:
        return
    if outcome.edit and outcome.text is not None:
        await edit_answer(
            context.bot, message.chat.id, message.message_id, outcome.text, outcome.keyboard
        )
    elif outcome.remove_keyboard:
        with contextlib.suppress(TelegramError):
            await context.bot.edit_message_reply_markup(message.chat.id, message.message_id)


async def press(state: BotState, query: CallbackQuery) -> Outcome:
    """Decide what a button press does (the store write included); the caller answers it."""
    action = parse_callback_data(query.data or "")
    message = query.message
    if action is None or message is None:
        return Outcome(notice=replies.unknown_button())
    store = state.feedback
    if store is None:
        return Outcome(notice=replies.corrections_unavailable(), alert=True)
    sample = await find_pressed(state, store, message.chat.id, message.message_id, action.sample_id)
    if sample is None:
        return Outcome(notice=replies.stale_answer(), remove_keyboard=True)
    answer_html = getattr(message, "text_html", None) or ""
    if not answer_html and action.kind not in ("ok", "d", "n"):
        return Outcome(notice=replies.stale_answer(), remove_keyboard=True)
    predicted = sample.predicted
    kind = action.kind
    if kind in ("ok", "d", "n"):
        confirmed = None if kind == "ok" else action.number
        if confirmed is not None and len(confirmed) != len(predicted):
            return Outcome(notice=replies.unknown_button())
        result = await asyncio.to_thread(
            store.confirm,
            user_id=query.from_user.id,
            confirmed=confirmed,
            sample_id=sample.sample_id,
        )
        return confirmation_outcome(result, store, answer_html)
    if sample.confirmed is not None:  # a stale keyboard: say so and show the confirmation
        footer = replies.confirmed_footer(predicted, sample.confirmed)
        return Outcome(
            notice=replies.already_confirmed(sample.confirmed),
            edit=True,
            text=replies.with_footer(answer_html, footer),
        )
    if kind == "back":
        return Outcome(
            edit=True,
            text=replies.with_footer(answer_html, None),
            keyboard=answer_keyboard(sample.sample_id),
        )
    if kind == "no" and len(predicted) == 1:
        return Outcome(
            edit=True,
            text=replies.with_footer(answer_html, replies.digit_question()),
            keyboard=digit_keypad(sample.sample_id),
        )
    draft = predicted if kind == "no" else action.number or ""
    if len(draft) != len(predicted):
        return Outcome(notice=replies.unknown_button())
    if kind == "p" and action.position is not None:
        return Outcome(
            edit=True,
            text=replies.with_footer(answer_html, replies.position_question(action.position)),
            keyboard=position_keypad(sample.sample_id, action.position, draft),
        )
    return Outcome(
        edit=True,
        text=replies.with_footer(answer_html, replies.number_question()),
        keyboard=number_editor(sample.sample_id, predicted, draft),
    )


async def on_typed_correction(update: Update, context: BotContext) -> None:
    """A number sent as a reply to one of the bot's answers: store it as the confirmed number."""
    message = update.effective_message
    user = update.effective_user
    answer = message.reply_to_message if message else None
    if message is None or user is None or answer is None or not message.text:
        return
    private = message.chat.type == "private"
    if answer.from_user is None or answer.from_user.id != context.bot.id:
        if private:  # a number replied to one's own message: what the bot says to any text
            await message.reply_text(replies.private_text_hint())
        return
    state = context.state
    store = state.feedback
    if store is None:
        await message.reply_text(replies.corrections_unavailable())
        return
    number = typed_number(message.text)
    if len(number) > MAX_DIGITS:
        await message.reply_text(replies.typed_too_long(MAX_DIGITS))
        return
    sample = await asyncio.to_thread(store.find, message.chat.id, answer.message_id)
    if sample is None:
        # Typed right after the answer arrived: its message id may not be stored yet.
        await wait_for_links(state)
        sample = await asyncio.to_thread(store.find, message.chat.id, answer.message_id)
    if sample is None:
        if private:  # in a group, a number replied to another bot message is just chat
            await message.reply_text(replies.typed_not_an_answer())
        return
    result = await asyncio.to_thread(
        store.confirm, user_id=user.id, confirmed=number, sample_id=sample.sample_id
    )
    outcome = confirmation_outcome(result, store, answer.text_html or "", own_notice=False)
    if result.status is ConfirmStatus.CONFIRMED:
        notice = replies.typed_saved(result.predicted or "", result.confirmed or "")
    else:
        notice = outcome.notice or ""
    await message.reply_text(notice)
    if outcome.edit and outcome.text is not None:
        await edit_answer(context.bot, message.chat.id, answer.message_id, outcome.text, None)


def typed_number(text: str) -> str:
    """The digits of a typed correction in ASCII: `٣ 4` -> "34" (every Unicode decimal digit
    has its value; the store keeps 0-9)."""
    return "".join(str(unicodedata.decimal(char)) for char in "".join(text.split()))


FORGET_PREFIX = "fg"
FORGET_PATTERN = re.compile(rf"^{FORGET_PREFIX}:(?P<user>\d+):(?P<answer>yes|no)$")


def forget_keyboard(user_id: int) -> InlineKeyboardMarkup:
    """Yes / cancel under the /forget question; the data names who asked."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    replies.button_forget_yes(), callback_data=f"{FORGET_PREFIX}:{user_id}:yes"
                ),
                InlineKeyboardButton(
                    replies.button_forget_no(), callback_data=f"{FORGET_PREFIX}:{user_id}:no"
                ),
            ]
        ]
    )


async def on_forget(update: Update, context: BotContext) -> None:
    """/forget: ask, with a button, before deleting everything the sender contributed."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    if message.sender_chat is not None:
        # An anonymous admin (or a channel) writes as one identity shared by all of them:
        # forgetting "them" would delete every other anonymous admin's data too.
        await message.reply_text(replies.forget_anonymous())
        return
    if context.state.feedback is None:
        await message.reply_text(replies.corrections_unavailable())
        return
    await message.reply_text(replies.forget_question(), reply_markup=forget_keyboard(user.id))


async def on_forget_button(update: Update, context: BotContext) -> None:
    """The answer to the /forget question: delete (only for who asked), or leave everything."""
    query = update.callback_query
    match = FORGET_PATTERN.match(query.data or "") if query else None
    if query is None or match is None:
        return
    if int(match["user"]) != query.from_user.id:  # in a group, others see the buttons too
        await query.answer(replies.forget_not_yours(), show_alert=True)
        return
    store = context.state.feedback
    if match["answer"] == "no":
        text = replies.forget_cancelled()
    elif store is None:
        await query.answer(replies.corrections_unavailable(), show_alert=True)
        return
    else:
        count = await asyncio.to_thread(store.forget, query.from_user.id)
        logger.info("/forget removed %d item(s) of one user", count)
        text = replies.forgotten(count)
    await query.answer()
    if query.message is not None:
        await edit_answer(context.bot, query.message.chat.id, query.message.message_id, text, None)


# --- helpers -----------------------------------------------------------------------------------


async def edit_answer(
    bot: Bot, chat_id: int, message_id: int, text: str, keyboard: InlineKeyboardMarkup | None
) -> None:
    """Replace an answer's text and keyboard; an unchanged or vanished answer is not an error."""
    try:
        await bot.edit_message_text(
            text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard
        )
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            logger.warning("cannot edit answer %s in chat %s: %s", message_id, chat_id, error)
    except TelegramError as error:
        logger.warning("cannot edit answer %s in chat %s: %s", message_id, chat_id, error)


async def stats_text(state: BotState, *, html_format: bool = True) -> str | None:
    """The corrections part of /stats (None without a store)."""
    store = state.feedback
    if store is None:
        return None
    version = state.classifier.version
    overall, served = await asyncio.to_thread(
        lambda: (store.stats(), store.stats(model_version=version))
    )
    return admin_replies.feedback_stats(overall, served, version, html_format=html_format)
