"""Build the python-telegram-bot Application: the one place where the bot is wired together.

`build_application` sets the Bot API URLs (a self-hosted server or the local emulator works the
same as api.telegram.org), concurrent update processing, the rate limiter, the handlers, the
start-up work (feedback store, command lists, model warm-up, one log line) and the error handler;
the feedback store is opened in post_init and closed in post_shutdown. Logging setup lives here
too; the redaction of secrets in bot/redaction.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageDraw
from telegram import Bot, BotCommand, BotCommandScopeChat, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import i18n, replies
from bot.handlers import commands, corrections, flood, images
from bot.handlers.flood import SHARE_WINDOW_SECONDS
from bot.handlers.retrain import cancel_retrain
from bot.heartbeat import HEARTBEAT_SECONDS, touch_heartbeat
from bot.redaction import install_redaction
from bot.settings import Settings
from bot.state import STATE_KEY, BotApplication, BotContext, BotState, FloodGate, get_state
from bot.transport.aiohttp_request import AiohttpRequest
from bot.transport.network import RetryingRateLimiter
from bot.transport.updates import ImageSlotProcessor
from core import registry
from core.serving import Classifier, ClassifierWorkers

logger = logging.getLogger(__name__)

# Image updates handled at the same time: enough to keep both inference threads and the network
# busy, bounded so that a burst of 20 MB documents cannot exhaust memory. Other updates (commands,
# buttons) do not wait for these slots (bot/transport/updates.py).
CONCURRENT_IMAGES = 32
# How long a request may wait for a free connection of the pool (PTB's default, 1 s, turns a
# burst into "Pool timeout" errors once the pool is smaller than the number of requests at once).
POOL_TIMEOUT = 30.0
RATE_LIMIT_RETRIES = 3  # retry a 429 (after its retry_after) this many times

PUBLIC_COMMANDS = ("start", "help", "predict", "debug", "forget")
ADMIN_COMMANDS = (*PUBLIC_COMMANDS, "stats", "retrain")


def command_menu(names: Iterable[str], language: str) -> list[BotCommand]:
    """The command menu in `language` (the descriptions live with the other texts)."""
    with i18n.use_language(language):
        descriptions = replies.command_descriptions()
    return [BotCommand(name, descriptions[name]) for name in names]


async def set_command_menus(bot: Bot, admin_user_ids: Iterable[int]) -> None:
    """The menu for everyone and for each admin, in English (the default) and in each language
    with a catalog: Telegram shows a user the list for their own language_code."""
    for language in i18n.LANGUAGES:
        code = None if language == i18n.DEFAULT_LANGUAGE else language
        await bot.set_my_commands(command_menu(PUBLIC_COMMANDS, language), language_code=code)
    for admin_id in admin_user_ids:
        try:
            for language in i18n.LANGUAGES:
                code = None if language == i18n.DEFAULT_LANGUAGE else language
                await bot.set_my_commands(
                    command_menu(ADMIN_COMMANDS, language),
                    scope=BotCommandScopeChat(admin_id),
                    language_code=code,
                )
        except TelegramError as error:  # e.g. the admin has not opened a chat with the bot yet
            logger.warning("cannot show admin commands to user %s: %s", admin_id, error)


def build_application(settings: Settings, classifier: Classifier | None = None) -> BotApplication:
    """The bot, ready for `run_polling`/`run_webhook` (or initialize/start in tests)."""
    if settings.telegram_bot_token is None:
        raise ValueError(
            "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in the "
            "environment or in .env"
        )
    token = settings.telegram_bot_token.get_secret_value()
    secret = settings.webhook_secret_token
    install_redaction(
        [
            token,
            secret.get_secret_value() if secret else "",
            settings.feedback_salt.get_secret_value() if settings.feedback_salt else "",
        ]
    )
    if classifier is None:
        classifier = Classifier(settings.model_dir)
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .concurrent_updates(ImageSlotProcessor(CONCURRENT_IMAGES))
        .context_types(ContextTypes(context=BotContext))
    )
    if settings.bot_api_client == "aiohttp":
        builder = builder.request(
            AiohttpRequest(settings.bot_api_connections, pool_timeout=POOL_TIMEOUT)
        ).get_updates_request(AiohttpRequest(1, pool_timeout=POOL_TIMEOUT))
    else:  # PTB's own httpx backend
        builder = builder.connection_pool_size(settings.bot_api_connections).pool_timeout(
            POOL_TIMEOUT
        )
    application = (
        builder.defaults(
            # Every reply quotes the message it answers (many people may post at once), and is
            # still sent when that message was deleted meanwhile.
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                do_quote=True,
                allow_sending_without_reply=True,
            )
        )
        .rate_limiter(
            RetryingRateLimiter(
                retries=settings.bot_api_retries,
                overall_max_rate=settings.rate_limit_overall,
                group_max_rate=settings.rate_limit_group_per_minute,
                max_retries=RATE_LIMIT_RETRIES,
            )
        )
        .post_init(on_post_init)
        .post_stop(on_post_stop)
        .post_shutdown(on_post_shutdown)
        .build()
    )
    application.bot_data[STATE_KEY] = BotState(
        settings=settings,
        classifier=classifier,
        executor=ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="digitbot-model"),
        flood=FloodGate(settings.flood_limit, settings.flood_window_seconds),
        actions=FloodGate(settings.action_flood_limit, settings.flood_window_seconds),
        group_shares=FloodGate(settings.group_user_share_per_minute, SHARE_WINDOW_SECONDS),
        workers=start_workers(classifier, settings.image_processes, settings.image_timeout_seconds),
    )
    if settings.retrain_on_worker:  # several replicas; off by default (one machine)
        from bot.cluster.jobs import QueuedTraining

        get_state(application.bot_data).shared_training = QueuedTraining(settings, classifier)
    if settings.replica_id:  # one of several webhook replicas (bot/cluster/)
        from bot.cluster.replica import Replica
        from bot.transport.webhook import REPLICA_KEY

        replica = Replica(settings)
        application.bot_data[REPLICA_KEY] = replica
        get_state(application.bot_data).shared_flood = replica.flood
    new_messages = filters.UpdateType.MESSAGE
    # First, for every update: the texts it gets are in its sender's language; then the flood
    # limits of commands and presses (one handler runs per group, so each has its own).
    application.add_handler(TypeHandler(Update, i18n.language_middleware), group=-2)
    application.add_handler(TypeHandler(Update, flood.on_update), group=-1)
    application.add_handlers(
        [
            CommandHandler("start", commands.on_start, filters=new_messages),
            CommandHandler("help", commands.on_help, filters=new_messages),
            CommandHandler("predict", images.on_predict, filters=new_messages),
            CommandHandler("debug", images.on_debug, filters=new_messages),
            CommandHandler("stats", commands.on_stats, filters=new_messages),
            CommandHandler("retrain", commands.on_retrain, filters=new_messages),
            CommandHandler("forget", corrections.on_forget, filters=new_messages),
            MessageHandler(new_messages & (filters.PHOTO | filters.Document.ALL), images.on_image),
            MessageHandler(
                new_messages
                & filters.REPLY
                & filters.TEXT
                & ~filters.COMMAND
                & filters.Regex(corrections.TYPED_NUMBER),
                corrections.on_typed_correction,
            ),
            MessageHandler(
                new_messages & filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND,
                commands.on_private_text,
            ),
            CallbackQueryHandler(corrections.on_forget_button, pattern=corrections.FORGET_PATTERN),
            CallbackQueryHandler(corrections.on_button),  # every button, unknown ones included
        ]
    )
    application.add_error_handler(commands.on_error)
    if settings.heartbeat_file is not None and application.job_queue is not None:
        # The first beat is written by post_init; this one keeps it fresh.
        application.job_queue.run_repeating(
            write_heartbeat, interval=HEARTBEAT_SECONDS, first=HEARTBEAT_SECONDS, name="heartbeat"
        )
    return application


async def on_post_init(application: BotApplication) -> None:
    """Set the command lists, warm the model, log one line with the version and accuracy."""
    state = get_state(application.bot_data)
    bot = application.bot
    await corrections.open_feedback(state)  # first: a bad DATABASE_URL stops the start
    if state.shared_training is not None:  # the queue, and the shared registry's CURRENT
        await state.shared_training.open()
    if state.settings.replica_id:
        from bot.cluster.replica import get_replica

        replica = get_replica(application.bot_data)
        if replica is not None:
            await replica.open()
    await set_command_menus(bot, state.settings.admin_user_ids)
    removed = await asyncio.to_thread(registry.remove_orphaned_staging, state.settings.model_dir)
    if removed:  # left by a training process that died with an earlier bot
        logger.info("removed %d orphaned staging folder(s)", removed)
    loop = asyncio.get_running_loop()
    warm_seconds = await loop.run_in_executor(state.executor, warm_up, state.classifier)
    if state.workers is not None:
        try:
            await state.workers.warm_up()
        except Exception:
            logger.exception(
                "the image worker processes did not start; classifying images in "
                "%d threads of this process instead",
                state.settings.worker_threads,
            )
            state.workers.shutdown()
            state.workers = None
    accuracy = state.classifier.metadata.get("test_accuracy")
    accuracy_text = f"{accuracy:.2%}" if isinstance(accuracy, int | float) else "unknown"
    if state.settings.heartbeat_file is not None:
        touch_heartbeat(state.settings.heartbeat_file)
    logger.info(
        "@%s serving model %s (%s), MNIST test accuracy %s, warmed in %.0f ms%s",
        bot.username,
        state.classifier.version,
        state.classifier.backend,
        accuracy_text,
        warm_seconds * 1000,
        f"; FALL-BACK: {state.classifier.fallback_reason}"
        if state.classifier.fallback_reason
        else "",
    )


def start_workers(
    classifier: Classifier, processes: int, timeout: float
) -> ClassifierWorkers | None:
    """The image worker processes, or None (threads) when 0 are asked or they cannot start."""
    if processes == 0:
        return None
    try:
        return ClassifierWorkers(classifier, processes, timeout=timeout)
    except OSError:  # e.g. no shared-memory semaphores in this container
        logger.exception("cannot create image worker processes; classifying images in threads")
        return None


async def on_post_stop(application: BotApplication) -> None:
    """Stop a running /retrain before the bot's connection closes."""
    await cancel_retrain(get_state(application.bot_data))


async def on_post_shutdown(application: BotApplication) -> None:
    """Release the worker processes, threads and the feedback store's connections."""
    state = get_state(application.bot_data)
    if state.workers is not None:
        state.workers.shutdown()
    state.executor.shutdown(wait=True, cancel_futures=True)
    if state.shared_training is not None:
        await state.shared_training.close()
    await corrections.close_feedback(state)
    if state.settings.replica_id:
        from bot.cluster.replica import get_replica

        replica = get_replica(application.bot_data)
        if replica is not None:
            await replica.close()  # after the handlers stopped: only unhandled updates are left


def warm_up(classifier: Classifier) -> float:
    """Run one drawn digit through preprocessing and the model; return the seconds it took."""
    started = time.perf_counter()
    page = Image.new("L", (160, 160), 255)
    ImageDraw.Draw(page).line([(80, 30), (80, 130)], fill=0, width=12)
    classifier.classify(page)
    return time.perf_counter() - started


async def write_heartbeat(context: BotContext) -> None:
    """Touch the heartbeat file while the bot is running (read by `digitbot health`)."""
    state = context.state
    path = state.settings.heartbeat_file
    updater = context.application.updater
    receiving = state.webhook_serving or (updater is not None and updater.running)
    if path is None or not receiving:
        return
    problem = state.stuck_images()
    if problem:
        logger.error("unhealthy: %s", problem)
    touch_heartbeat(path, problem)


# --- logging -----------------------------------------------------------------------------------


def configure_logging(settings: Settings) -> None:
    """One readable format; httpx quiet (it logs request URLs, which contain the token)."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=settings.log_level.upper()
    )
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.telegram_bot_token is not None:
        install_redaction([settings.telegram_bot_token.get_secret_value()])
