"""Images: the callbacks that pick the image, call the classifier and reply.

Who gets an answer:
- private chats: every photo and image file;
- groups: a photo/image whose caption mentions the bot or starts with /predict, a photo sent as a
  reply to one of the bot's messages, and /predict sent as a reply to a photo; with
  `GROUP_MODE=all`, every photo the bot receives (Telegram only delivers every message when the
  bot's privacy mode is off or the bot is a group admin).
Every answer quotes the message it is about, so many people can post at once, and carries the
correction buttons of bot/handlers/corrections.py (the answer is recorded in the feedback store
first).
Showing what the model saw: the word `debug` in a photo's caption (or `/debug` as its caption, which
also reaches the bot in groups) adds a reply with the 28x28 crops it classified, enlarged; `/debug`
sent as a reply to a photo sends just those crops.

Which photo size is downloaded: Telegram offers each photo at several sizes (longest side about
90, 320, 800 and 1280 px). We take the smallest size whose longest side is at least 800 px, else
the largest: preprocessing analyses the image at 256 px on its longest side, so 800 px leaves a 3x
margin for a digit that fills only part of the frame, while the full-size original (often 1280 px
or more) would only cost download time.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from telegram import (
    Chat,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    PhotoSize,
    Update,
)

from bot import i18n, replies
from bot.handlers import corrections, flood, message_of
from bot.state import BotContext, BotState, FloodVerdict
from bot.transport.network import with_retries
from core.decode import ImageError
from core.serving import Classification

logger = logging.getLogger(__name__)

MIN_PHOTO_SIDE = 800  # see the module docstring
IMAGE_MIME_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/pjpeg",
        "image/jpg",
        "image/webp",
        "image/bmp",
        "image/x-bmp",
        "image/x-ms-bmp",
        "image/gif",
        "image/tiff",
        "image/tif",
    }
)
IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".bmp",
        ".dib",
        ".gif",
        ".tif",
        ".tiff",
    }
)
PREDICT_COMMAND = "predict"
DEBUG_COMMAND = "debug"
MAX_NUMBER_REPLIES = 8  # replies with buttons for one picture; further numbers are listed
DEBUG_WORD = re.compile(r"(?<![\w/])/?debug\b", re.IGNORECASE)
_PLOT_LOCK = threading.Lock()  # pyplot keeps global state: one figure at a time


@dataclass(frozen=True)
class ImageFile:
    """The file to download for one image message."""

    file_id: str
    file_size: int | None
    width: int | None = None
    height: int | None = None


class Refusal(Exception):
    """An image request we answer with an explanation instead of a digit."""


# --- decisions (pure functions, tested directly) -----------------------------------------------


def choose_photo_size(sizes: list[PhotoSize], min_side: int = MIN_PHOTO_SIDE) -> PhotoSize:
    """The smallest size whose longest side is >= min_side, else the largest one."""
    if not sizes:
        raise ValueError("a photo message without sizes")
    by_area = sorted(sizes, key=lambda size: size.width * size.height)
    for size in by_area:
        if max(size.width, size.height) >= min_side:
            return size
    return by_area[-1]


def is_image_document(file_name: str | None, mime_type: str | None) -> bool:
    mime = (mime_type or "").lower()
    extension = PurePosixPath(file_name or "").suffix.lower()
    return mime in IMAGE_MIME_TYPES or extension in IMAGE_EXTENSIONS


def mentions_bot(message: Message, bot_id: int, bot_username: str) -> bool:
    """The text or caption contains @bot_username (or a text mention of the bot)."""
    wanted = f"@{bot_username}".lower()
    entities = message.parse_caption_entities() if message.caption else message.parse_entities()
    for entity, text in entities.items():
        if entity.type == MessageEntity.MENTION and text.lower() == wanted:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            return True
    return False


def caption_command(message: Message, bot_username: str) -> str | None:
    """The command a caption starts with (`/predict` or `/predict@this_bot`), else None."""
    if not message.caption:
        return None
    for entity, text in message.parse_caption_entities([MessageEntity.BOT_COMMAND]).items():
        if entity.offset != 0:
            continue
        command, _, addressee = text[1:].partition("@")
        if addressee and addressee.lower() != bot_username.lower():
            return None
        return command.lower()
    return None


def replies_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return bool(replied and replied.from_user and replied.from_user.id == bot_id)


def should_answer_image(
    message: Message, *, bot_id: int, bot_username: str, group_mode: str
) -> bool:
    """Whether an image message is for us (private: always; groups: see the module docstring)."""
    if message.chat.type == Chat.PRIVATE or group_mode == "all":
        return True
    return (
        mentions_bot(message, bot_id, bot_username)
        or caption_command(message, bot_username) in (PREDICT_COMMAND, DEBUG_COMMAND)
        or replies_to_bot(message, bot_id)
    )


def wants_debug(message: Message) -> bool:
    """The caption asks to see the crops: the word `debug` (or /debug) anywhere in it."""
    return bool(message.caption and DEBUG_WORD.search(message.caption))


def crops_png(classification: Classification, titles: list[str]) -> bytes:
    """The 28x28 crops the model saw, enlarged side by side with their `titles`, as PNG bytes."""
    from core import plots  # matplotlib loads only when someone asks for crops

    buffer = io.BytesIO()
    with _PLOT_LOCK:
        plots.save_crops([digit.crop for digit in classification.digits], buffer, titles)
    return buffer.getvalue()


async def _reply_with_keyboard(
    message: Message, text: str, keyboard: InlineKeyboardMarkup | None
) -> Message:
    return await message.reply_text(text, reply_markup=keyboard)


def image_file(message: Message, state: BotState) -> ImageFile:
    """What to download for this message; Refusal (with the reply) when it cannot be used."""
    settings = state.settings
    if message.photo:
        size = choose_photo_size(list(message.photo))
        if size.width * size.height > settings.max_image_pixels:
            raise Refusal(
                replies.too_many_pixels(size.width, size.height, settings.max_image_pixels)
            )
        chosen = ImageFile(size.file_id, size.file_size, size.width, size.height)
    elif message.document:
        document = message.document
        if not is_image_document(document.file_name, document.mime_type):
            if (document.mime_type or "").lower().startswith("image/"):
                raise Refusal(replies.unsupported_image_format(document.mime_type))
            raise Refusal(replies.not_an_image(document.file_name, document.mime_type))
        chosen = ImageFile(document.file_id, document.file_size)
    else:
        raise Refusal(replies.predict_usage())
    if chosen.file_size is not None and chosen.file_size > settings.max_download_bytes:
        raise Refusal(replies.too_large_download(chosen.file_size, settings.max_download_bytes))
    return chosen


# --- helpers -----------------------------------------------------------------------------------


async def classify_image(
    context: BotContext, image_message: Message, user_id: int | None
) -> tuple[Classification, bytes] | None:
    """Flood check, size checks, download, classify off the event loop: the answer and the
    image's bytes; None when the user got another reply instead (flood warning, refusal,
    unreadable image)."""
    state = context.state
    settings = state.settings
    if user_id is not None:
        # The user's image limit first, then their share of a group's answers
        # (bot/handlers/flood.py).
        verdict, wait = await flood.count(state, state.flood, "images", user_id)
        if verdict is FloodVerdict.ALLOW:
            verdict, wait = await flood.group_share(state, user_id, image_message.chat)
            text = flood.group_share_reply(state, wait)
        else:
            text = replies.flood(settings.flood_limit, settings.flood_window_seconds, wait)
        if verdict is FloodVerdict.WARN:
            await image_message.reply_text(text)
        if verdict is not FloodVerdict.ALLOW:
            return None
    try:
        chosen = image_file(image_message, state)
        telegram_file = await context.bot.get_file(chosen.file_id)
        if (
            telegram_file.file_size is not None
            and telegram_file.file_size > settings.max_download_bytes
        ):
            raise Refusal(
                replies.too_large_download(telegram_file.file_size, settings.max_download_bytes)
            )
        data = bytes(
            await with_retries(
                telegram_file.download_as_bytearray, settings.bot_api_retries, "download"
            )
        )
        if len(data) > settings.max_download_bytes:
            raise Refusal(replies.too_large_download(len(data), settings.max_download_bytes))
        return await state.classify(data), data
    except Refusal as refusal:
        await image_message.reply_text(str(refusal))
    except ImageError as error:
        await image_message.reply_text(replies.image_error(error.reason, **error.details))
    return None


async def answer_image(
    context: BotContext,
    image_message: Message,
    user_id: int | None,
    *,
    debug: bool = False,
) -> None:
    """Classify the image and reply with the digit(s); with `debug` also send the crops.

    The answer is in the language of the person who sent the image (in a group, a /predict
    from someone else still answers in the photo's sender's language)."""
    sender = image_message.from_user
    with i18n.use_language(sender.language_code if sender else None):
        await _answer_image(context, image_message, user_id, debug=debug)


async def _answer_image(
    context: BotContext,
    image_message: Message,
    user_id: int | None,
    *,
    debug: bool,
) -> None:
    started = time.perf_counter()
    state = context.state
    answered = await classify_image(context, image_message, user_id)
    if answered is None:
        return
    classification, data = answered
    # Counted before sending, so that /stats right after an answer includes it.
    state.record_prediction(time.perf_counter() - started, classification.seconds)
    threshold = state.settings.confidence_threshold
    readings = classification.numbers
    if len(readings) <= 1:
        answers = [(classification, replies.answer(classification, threshold))]
    else:
        # One reply per number, each with its own buttons: people correct one at a time.
        answers = [
            (
                classification.part(reading),
                replies.page_number(reading.digits, index, len(readings), threshold),
            )
            for index, reading in enumerate(readings[:MAX_NUMBER_REPLIES])
        ]
    for index, (part, text) in enumerate(answers):
        sample_id = await corrections.record_answer(state, image_message, part)
        last = index == len(answers) - 1 and len(readings) <= MAX_NUMBER_REPLIES and not debug
        await corrections.send_answer(
            state,
            sample_id,
            functools.partial(_reply_with_keyboard, image_message, text),
            answered=image_message if last else None,
        )
    if len(readings) > MAX_NUMBER_REPLIES:
        rest = [reading.number for reading in readings[MAX_NUMBER_REPLIES:]]
        await image_message.reply_text(
            replies.more_numbers(rest, MAX_NUMBER_REPLIES, len(readings))
        )
    if debug:
        await send_crops(context, image_message, classification, data)


async def send_crops(
    context: BotContext,
    image_message: Message,
    classification: Classification,
    data: bytes,
) -> None:
    """Reply to the image with the enlarged 28x28 crops the model classified, and with the
    picture of the pieces of ink: which became digits, which were left out and why."""
    loop = asyncio.get_running_loop()
    executor = context.state.executor
    if classification.digits:
        # The titles are made here: executor threads do not see this update's language.
        titles = replies.debug_titles(classification)
        png = await loop.run_in_executor(executor, crops_png, classification, titles)
        await reply_photo(image_message, png, replies.debug_caption(classification))
    else:
        await image_message.reply_text(replies.debug_no_digit())
    if classification.digits or classification.rejected:
        pieces = await loop.run_in_executor(executor, pieces_png, data, classification)
        await reply_photo(image_message, pieces, replies.debug_pieces_caption())


async def reply_photo(image_message: Message, png: bytes, caption: str) -> None:
    await image_message.reply_photo(png, caption=caption)


def pieces_png(data: bytes, classification: Classification) -> bytes:
    """The picture of the pieces of ink (core.plots.pieces_picture) as PNG bytes."""
    from core import plots

    return plots.pieces_png(data, classification)


# --- callbacks ---------------------------------------------------------------------------------


async def on_image(update: Update, context: BotContext) -> None:
    """A photo or a document: answer it if it is addressed to the bot."""
    message = message_of(update)
    state = context.state
    if not should_answer_image(
        message,
        bot_id=context.bot.id,
        bot_username=context.bot.username,
        group_mode=state.settings.group_mode,
    ):
        return
    user = update.effective_user
    await answer_image(context, message, user.id if user else None, debug=wants_debug(message))


async def replied_image(message: Message, usage: str) -> Message | None:
    """The photo or file `message` replies to; None, after replying `usage`, when there is none."""
    target = message.reply_to_message
    if target is None or not (target.photo or target.document):
        await message.reply_text(usage)
        return None
    return target


async def on_predict(update: Update, context: BotContext) -> None:
    """/predict as a reply to an image: answer that image; otherwise explain how to use it."""
    target = await replied_image(message_of(update), replies.predict_usage())
    if target is None:
        return
    user = update.effective_user
    await answer_image(context, target, user.id if user else None)


async def on_debug(update: Update, context: BotContext) -> None:
    """/debug as a reply to an image: send the 28x28 crops the model saw, enlarged."""
    target = await replied_image(message_of(update), replies.debug_usage())
    if target is None:
        return
    user = update.effective_user
    answered = await classify_image(context, target, user.id if user else None)
    if answered is not None:
        await send_crops(context, target, *answered)
