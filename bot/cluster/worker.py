"""`digitbot worker`: take /retrain jobs from the shared queue, train, edit, promote, publish.

Runs on any machine that reaches DATABASE_URL (PostgreSQL) and the Bot API, with MNIST and the
same settings as the replicas (RETRAIN_*, FEEDBACK_SALT, TELEGRAM_BOT_TOKEN). A job runs through
the very path of a local /retrain (bot/handlers/retrain.py: the spawned training process, the
status message edited epoch by epoch, `core.promotion`'s rule): the worker keeps a BotState of
its own whose served model is the shared registry's CURRENT, so the candidate is judged against
what the replicas serve. A promoted candidate is published to the database first (every replica
downloads it within seconds, bot/cluster/registry_sync.py), then into the worker's own folder.

The job is procrastinate's (bot/cluster/jobs.py): an admin's `/retrain cancel` aborts it, which
cancels this coroutine; SIGTERM or Ctrl-C stop the training at once and tell the admin; a worker
killed outright has its job marked failed by whoever notices its heartbeat stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procrastinate
from procrastinate.job_context import AbortReason
from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Defaults, ExtBot

from bot import admin_replies, i18n
from bot.cluster.database import TRAINING_LOCK, postgres_conninfo
from bot.cluster.jobs import (
    HEARTBEAT_SECONDS,
    LOCK,
    QUEUE,
    STALLED_SECONDS,
    TASK,
    advisory_lock,
    create_queue_tables,
    fail_lost_jobs,
    queue_app,
    reply,
)
from bot.cluster.registry_sync import create_tables, publish, sync_current
from bot.handlers import corrections
from bot.handlers.flood import SHARE_WINDOW_SECONDS
from bot.handlers.retrain import RetrainCommand, cancel_retrain, start_retrain
from bot.settings import Settings, find_mnist
from bot.state import BotState, FloodGate
from bot.transport.aiohttp_request import AiohttpRequest
from bot.transport.network import RetryingRateLimiter
from core import registry
from core.serving import Classifier

logger = logging.getLogger(__name__)

RUNTIME_KEY = "digitbot"  # where the job finds the worker's runtime (additional_context)
BOT_API_CONNECTIONS = 4  # a status edit a few seconds apart and one verdict: few requests
ABORT_POLL_SECONDS = 1.0  # the fall-back when the abort NOTIFY of /retrain cancel is missed
STOPPING = "the worker is stopping, so the training was interrupted"
ANOTHER_TRAINING = "another worker is training right now (it holds the training lock)"


@dataclass
class WorkerRuntime:
    """What every job of this worker shares."""

    state: BotState
    bot: ExtBot[Any]
    conninfo: str


def build_bot(settings: Settings) -> ExtBot[Any]:
    """A Bot API client like the bot's (URLs, HTML texts, retries and Telegram's limits)."""
    if settings.telegram_bot_token is None:
        raise ValueError(
            "digitbot worker edits the admins' messages: set TELEGRAM_BOT_TOKEN as for the bot"
        )
    return ExtBot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=f"{settings.telegram_api_url}/bot",
        base_file_url=f"{settings.telegram_api_url}/file/bot",
        request=AiohttpRequest(BOT_API_CONNECTIONS),
        defaults=Defaults(
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            allow_sending_without_reply=True,
        ),
        rate_limiter=RetryingRateLimiter(
            retries=settings.bot_api_retries,
            overall_max_rate=settings.rate_limit_overall,
            group_max_rate=settings.rate_limit_group_per_minute,
        ),
    )


def worker_state(settings: Settings, classifier: Classifier) -> BotState:
    """The BotState a local /retrain would find, without the parts that answer photos."""
    return BotState(
        settings=settings,
        classifier=classifier,
        executor=ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="digitbot-judge"),
        flood=FloodGate(settings.flood_limit, settings.flood_window_seconds),
        actions=FloodGate(settings.action_flood_limit, settings.flood_window_seconds),
        group_shares=FloodGate(settings.group_user_share_per_minute, SHARE_WINDOW_SECONDS),
    )


async def retrain_task(
    context: procrastinate.JobContext,
    *,
    chat_id: int,
    command_message_id: int,
    status_message_id: int,
    action: str,
    epochs: int,
    language: str,
    queued_at: float,
) -> str:
    """The job a replica queued for a /retrain: train it here, in the admin's language."""
    runtime = context.additional_context[RUNTIME_KEY]
    if not isinstance(runtime, WorkerRuntime):
        raise ValueError("the retrain task runs only in `digitbot worker`")
    with i18n.use_language(language):
        return await train(
            runtime,
            context,
            chat_id=chat_id,
            command_message_id=command_message_id,
            status_message_id=status_message_id,
            command=RetrainCommand(action, epochs),
        )


async def train(
    runtime: WorkerRuntime,
    context: procrastinate.JobContext,
    *,
    chat_id: int,
    command_message_id: int,
    status_message_id: int,
    command: RetrainCommand,
) -> str:
    """One /retrain under the training lock, from the shared CURRENT; -> what happened."""
    state, bot = runtime.state, runtime.bot
    async with advisory_lock(runtime.conninfo, TRAINING_LOCK, wait=False) as taken:
        if not taken:
            await reply(
                bot, chat_id, command_message_id, admin_replies.retrain_failed(ANOTHER_TRAINING)
            )
            return "refused: " + ANOTHER_TRAINING
        settings = state.settings
        try:
            version = await asyncio.to_thread(sync_current, runtime.conninfo, settings.model_dir)
            if version != state.classifier.version:  # fine-tune and judge what is served
                await asyncio.to_thread(state.classifier.reload)
            job = await start_retrain(
                state,
                bot,
                chat_id=chat_id,
                command_message_id=command_message_id,
                user_id=0,  # not needed by the training; metadata.json never names the admin
                command=command,
                mnist_path=find_mnist(settings.mnist_path),
                status_message_id=status_message_id,
            )
        except Exception as error:  # before the supervisor could tell the admin: tell here
            logger.exception("cannot start the queued retrain")
            failed = admin_replies.retrain_failed(f"{type(error).__name__}: {error}")
            await reply(bot, chat_id, command_message_id, failed)
            raise
        if job.task is None:
            raise ValueError("start_retrain returned a job without its supervising task")
        try:
            await asyncio.shield(job.task)  # it tells the admin the verdict
        except asyncio.CancelledError:  # procrastinate's abort: /retrain cancel or shutdown
            by_admin = context.abort_reason() == AbortReason.USER_REQUEST
            await asyncio.shield(cancel_retrain(state, stopping=not by_admin, reason=STOPPING))
            raise
    return f"trained from {version}; serving {state.classifier.version}"


async def fail_lost_jobs_forever(app: procrastinate.App, bot: ExtBot[Any]) -> None:
    """Every few seconds, fail the jobs of workers that died (another machine's, too)."""
    while True:
        try:
            await fail_lost_jobs(app, bot)
        except procrastinate.exceptions.ConnectorException as error:
            logger.warning("cannot look for lost retrain jobs: %s", error)
        await asyncio.sleep(HEARTBEAT_SECONDS)


def run_worker(settings: Settings) -> int:
    """`digitbot worker` until SIGTERM or Ctrl-C; the exit status."""
    asyncio.run(work(settings))
    return 0


async def work(settings: Settings) -> None:
    """Take /retrain jobs until procrastinate's signal handlers stop the worker."""
    conninfo = postgres_conninfo(settings.database_url, "digitbot worker")
    if find_mnist(settings.mnist_path) is None:
        raise ValueError("digitbot worker trains on MNIST: set MNIST_PATH to mnist.npz")
    bot = build_bot(settings)
    await create_queue_tables(conninfo)
    await asyncio.to_thread(create_tables, conninfo)
    removed = await asyncio.to_thread(registry.remove_orphaned_staging, settings.model_dir)
    if removed:  # left by a training process that died with an earlier worker
        logger.info("removed %d orphaned staging folder(s)", removed)
    served = await asyncio.to_thread(sync_current, conninfo, settings.model_dir)
    classifier = await asyncio.to_thread(Classifier, settings.model_dir)
    state = worker_state(settings, classifier)

    async def publish_model(staging: Path) -> None:
        await asyncio.to_thread(publish, conninfo, staging)

    state.publish_model = publish_model
    runtime = WorkerRuntime(state, bot, conninfo)
    app = queue_app(conninfo, pool_size=4)
    app.task(name=TASK, queue=QUEUE, lock=LOCK, queueing_lock=LOCK, pass_context=True)(retrain_task)
    await corrections.open_feedback(state)
    try:
        await bot.initialize()
        async with app.open_async():
            lost = asyncio.create_task(fail_lost_jobs_forever(app, bot), name="lost-jobs")
            logger.info(
                "digitbot worker %s ready as @%s: serving %s, waiting for /retrain jobs",
                worker_name(),
                bot.username,
                served,
            )
            try:
                await app.run_worker_async(
                    queues=[QUEUE],
                    name=worker_name(),
                    concurrency=1,
                    additional_context={RUNTIME_KEY: runtime},
                    abort_job_polling_interval=ABORT_POLL_SECONDS,
                    update_heartbeat_interval=HEARTBEAT_SECONDS,
                    stalled_worker_timeout=STALLED_SECONDS,
                    shutdown_graceful_timeout=0,  # stop the training now, tell the admin
                    install_signal_handlers=True,
                )
            finally:
                lost.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lost
    finally:
        await cancel_retrain(state, reason=STOPPING)
        await corrections.close_feedback(state)
        with contextlib.suppress(Exception):
            await bot.shutdown()
        state.executor.shutdown(wait=True, cancel_futures=True)


def worker_name() -> str:
    """host:pid, in procrastinate's workers table and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"
