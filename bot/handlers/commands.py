"""Commands: /start, /help, the admins' /stats and /retrain, the hint for plain text, and the
error handler. (/predict and /debug answer images: bot/handlers/images.py; /forget and typed
corrections: bot/handlers/corrections.py.)"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import InputMediaPhoto, Update
from telegram.error import TelegramError

from bot import admin_replies, replies
from bot.handlers import corrections, message_of
from bot.handlers.retrain import cancel_retrain, parse_command, served_arch, start_retrain
from bot.settings import DEFAULT_MNIST_FILE, PROJECT_DIR, find_mnist
from bot.state import BotContext
from core import registry
from core.recipes import FINE_TUNE, RECIPES

logger = logging.getLogger(__name__)

Callback = Callable[[Update, BotContext], Coroutine[Any, Any, None]]


def admin_only(callback: Callback) -> Callback:
    """Run `callback` for the users in ADMIN_USER_IDS; tell anyone else it is for admins."""

    @functools.wraps(callback)
    async def checked(update: Update, context: BotContext) -> None:
        user = update.effective_user
        if user is None or user.id not in context.state.settings.admin_user_ids:
            await message_of(update).reply_text(replies.admin_only())
            return
        await callback(update, context)

    return checked


async def on_start(update: Update, context: BotContext) -> None:
    """/start: greet and explain what to send."""
    user = update.effective_user
    await message_of(update).reply_text(
        replies.start(
            user.first_name if user else None,
            context.bot.username,
            context.state.settings.group_mode,
        ),
    )


async def on_help(update: Update, context: BotContext) -> None:
    """/help: what to send, tips for good photos, how groups work."""
    await message_of(update).reply_text(
        replies.help_text(context.bot.username, context.state.settings.group_mode),
    )


async def on_private_text(update: Update, context: BotContext) -> None:
    """Plain text in a private chat: say what the bot expects."""
    await message_of(update).reply_text(replies.private_text_hint())


@admin_only
async def on_stats(update: Update, context: BotContext) -> None:
    """/stats (admins): model metrics, counters since start, confusion matrix and curves."""
    state = context.state
    message = message_of(update)
    classifier = state.classifier
    served = state.predictions_served
    text = admin_replies.stats(
        metadata=classifier.metadata,
        backend=classifier.backend,
        fallback_reason=classifier.fallback_reason,
        predictions_served=served,
        average_answer_seconds=state.total_answer_seconds / served if served else None,
        average_model_seconds=state.total_model_seconds / served if served else None,
        uptime_seconds=state.uptime_seconds,
    )
    arch = state.settings.retrain_arch or served_arch(state)
    text += "\n" + admin_replies.retrain_recipe(
        state.settings.retrain_epochs,
        arch,
        RECIPES[arch].epochs if arch in RECIPES else None,
        state.settings.retrain_train_limit,
    )
    kept = await asyncio.to_thread(registry.kept_versions, state.settings.model_dir)
    text += "\n" + admin_replies.kept_versions(kept)
    feedback = await corrections.stats_text(state)
    if feedback:
        text += f"\n\n{feedback}"
    await message.reply_text(text)
    folder = registry.version_dir(state.settings.model_dir, classifier.version)
    media = [
        InputMediaPhoto((folder / name).read_bytes(), caption=caption)
        for name, caption in zip(
            ("confusion.png", "curves.png"), admin_replies.stats_image_captions(), strict=True
        )
        if (folder / name).is_file()
    ]
    if len(media) > 1:
        await message.reply_media_group(media)
    elif media:
        await message.reply_photo(media[0].media, caption=media[0].caption)


@admin_only
async def on_retrain(update: Update, context: BotContext) -> None:
    """/retrain [full] [epochs] | cancel (admins): train a candidate in the background."""
    state = context.state
    message = message_of(update)
    user = update.effective_user
    if user is None:  # admin_only has let a known user through
        return
    async with state.retrain_lock:  # two /retrain at once: exactly one starts
        full = RECIPES.get(state.settings.retrain_arch or served_arch(state), FINE_TUNE)
        try:
            command = parse_command(
                list(context.args or []), state.settings.retrain_epochs, full.epochs
            )
        except ValueError as error:
            await message.reply_text(str(error))
            return
        if state.shared_training is not None:  # RETRAIN_ON_WORKER: the queue decides
            if command.action == "cancel":
                await state.shared_training.cancel(context.bot, message)
            else:
                await state.shared_training.submit(
                    context.bot, message, command.action, command.epochs
                )
            return
        if command.action == "cancel":
            cancelled = await cancel_retrain(state, stopping=False)
            if not cancelled:
                await message.reply_text(admin_replies.retrain_nothing_to_cancel())
            return
        if state.retrain is not None:
            await message.reply_text(admin_replies.retrain_busy(state.retrain.progress_text()))
            return
        mnist_path = find_mnist(state.settings.mnist_path)
        if mnist_path is None:
            await message.reply_text(
                admin_replies.retrain_needs_mnist(DEFAULT_MNIST_FILE.relative_to(PROJECT_DIR)),
            )
            return
        mnist = state.settings.mnist_path
        if mnist is not None and not mnist.expanduser().exists():
            await message.reply_text(admin_replies.retrain_mnist_missing(str(mnist)))
            return
        await start_retrain(
            state,
            context.bot,
            chat_id=message.chat_id,
            command_message_id=message.message_id,
            user_id=user.id,
            command=command,
            mnist_path=mnist_path,
        )


async def on_error(update: object, context: BotContext) -> None:
    """Log the error with its context; tell the user something went wrong (no traceback)."""
    where = "no update"
    if isinstance(update, Update):
        chat = update.effective_chat
        user = update.effective_user
        where = (
            f"update {update.update_id} chat {chat.id if chat else None} "
            f"({chat.type if chat else '-'}) user {user.id if user else None}"
        )
    logger.error("error while handling %s: %s", where, context.error, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message:
        try:
            await message_of(update).reply_text(replies.something_went_wrong())
        except TelegramError as error:
            logger.warning("could not tell the user about the error: %s", error)
