"""/retrain as a job on a PostgreSQL queue (procrastinate), for `digitbot worker` to train.

With RETRAIN_ON_WORKER=true the replica that gets `/retrain` only answers and enqueues: the
chat, the command's and the status message's ids, the options and the admin's language. The
worker (bot/cluster/worker.py) trains through the same path as a local /retrain and edits that
status message. Why procrastinate: the queue is tables in the PostgreSQL the replicas already
share (no broker daemon to run, back up or secure), jobs survive restarts of everything, it
has queueing locks, LISTEN/NOTIFY wake-ups and cancel/abort of running jobs.

One /retrain at a time across every replica and worker:
- a replica checks for a queued or running job and enqueues under one advisory lock, so two
  replicas answering two admins at once cannot both enqueue; the second hears "already running";
- the job has procrastinate's `lock` and `queueing_lock`, and the worker trains holding another
  advisory lock, released by PostgreSQL if the worker dies.
`/retrain cancel` on any replica cancels a queued job (this replica tells the admin) or asks
the running one to abort (the worker stops the training and tells the admin).
A worker that dies mid-job (SIGKILL, power) leaves its job "doing" with a stale heartbeat:
whoever looks next (a worker, or a replica on /retrain) marks it failed and tells the admin
that it was lost; it is not retried on its own (a job that kills its worker would loop).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from procrastinate import exceptions as queue_errors
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from telegram import Bot, Message, ReplyParameters
from telegram.error import TelegramError

from bot import admin_replies, i18n
from bot.cluster.database import ENQUEUE_LOCK, SCHEMA_LOCK, postgres_conninfo
from bot.cluster.registry_sync import ModelFollower

if TYPE_CHECKING:
    from bot.settings import Settings
    from core.serving import Classifier

logger = logging.getLogger(__name__)

TASK = "digitbot.retrain"
QUEUE = "retrain"
LOCK = "digitbot-retrain"  # procrastinate's lock and queueing lock of every /retrain job
HEARTBEAT_SECONDS = 5.0  # the worker's heartbeat in procrastinate_workers
STALLED_SECONDS = 20.0  # a running job whose worker's heartbeat is older was lost
LOST_JOB = (
    "the worker running it stopped mid-training (killed, or cut off from the database); "
    "nothing was promoted"
)


def queue_app(conninfo: str, *, pool_size: int = 2) -> procrastinate.App:
    """A procrastinate App on the shared database (open it with `open_async`)."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_size)
    return procrastinate.App(connector=connector)


async def create_queue_tables(conninfo: str) -> None:
    """procrastinate's schema, unless there already (two starting processes take turns)."""
    async with await psycopg.AsyncConnection.connect(conninfo) as connection:
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        cursor = await connection.execute("SELECT to_regclass('procrastinate_jobs')")
        row = await cursor.fetchone()
        if row is None or row[0] is None:
            await connection.execute(SchemaManager.get_schema())
            logger.info("created the job queue's tables (procrastinate)")


@dataclass(frozen=True)
class ActiveJob:
    """The queued or running /retrain job."""

    id: int
    status: str  # "todo" or "doing"
    arguments: dict[str, Any]
    started: float | None  # seconds since it started; None: still queued


async def active_job(app: procrastinate.App) -> ActiveJob | None:
    rows = await app.connector.execute_query_all_async(
        "SELECT j.id, j.status, j.args, (SELECT extract(epoch FROM now() - max(e.at)) "
        "FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'started') AS running "
        "FROM procrastinate_jobs j WHERE j.task_name = %(task)s AND j.status IN ('todo', 'doing') "
        "ORDER BY j.id LIMIT 1",
        task=TASK,
    )
    if not rows:
        return None
    row = rows[0]
    running = row["running"]
    started = None if row["status"] == "todo" or running is None else float(running)
    return ActiveJob(int(row["id"]), str(row["status"]), dict(row["args"]), started)


async def fail_lost_jobs(app: procrastinate.App, bot: Bot) -> int:
    """Mark failed the running jobs whose worker stopped beating, and tell their admins."""
    stalled = await app.job_manager.get_stalled_jobs(
        task_name=TASK, seconds_since_heartbeat=STALLED_SECONDS
    )
    failed = 0
    for job in stalled:
        if job.id is None:
            continue
        try:  # only one of the processes that found it succeeds, and tells the admin
            await app.job_manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
        except queue_errors.ConnectorException:
            continue
        failed += 1
        logger.warning("retrain job %s was lost with its worker; marked failed", job.id)
        arguments = job.task_kwargs
        with i18n.use_language(str(arguments.get("language") or "")):
            text = admin_replies.retrain_failed(LOST_JOB)
        await reply(
            bot, int(str(arguments["chat_id"])), int(str(arguments["command_message_id"])), text
        )
    return failed


async def reply(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    """Answer the /retrain command message; a failure is logged (the job's outcome stands)."""
    try:
        await bot.send_message(chat_id, text, reply_parameters=ReplyParameters(message_id))
    except TelegramError as error:
        logger.error("cannot send a retrain message to chat %s: %s", chat_id, error)


@contextlib.asynccontextmanager
async def advisory_lock(conninfo: str, key: int, *, wait: bool) -> AsyncIterator[bool]:
    """Hold a PostgreSQL session advisory lock while the block runs (False: not taken, when
    `wait` is off); it is released at the end, or by PostgreSQL if this process dies."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        cursor = await connection.execute(f"SELECT {function}(%s)", (key,))
        row = await cursor.fetchone()
        taken = wait or bool(row and row[0])
        try:
            yield taken
        finally:
            if taken:
                await connection.execute("SELECT pg_advisory_unlock(%s)", (key,))


class QueuedTraining:
    """A replica's side of RETRAIN_ON_WORKER: enqueue and cancel /retrain, follow the shared
    model registry. What `BotState.shared_training` holds (bot/training.py's protocol)."""

    def __init__(self, settings: Settings, classifier: Classifier) -> None:
        self.conninfo = postgres_conninfo(settings.database_url, "RETRAIN_ON_WORKER=true")
        self.app = queue_app(self.conninfo)
        self.models = ModelFollower(self.conninfo, classifier, settings.model_poll_seconds)

    async def open(self) -> None:
        """Connect, create what is missing, serve the shared CURRENT and follow it."""
        await create_queue_tables(self.conninfo)
        await self.app.open_async()
        await self.models.start()

    async def close(self) -> None:
        await self.models.stop()
        await self.app.close_async()

    async def submit(self, bot: Bot, message: Message, action: str, epochs: int) -> None:
        """Answer /retrain [full] [epochs]: "already running", or a status message and a job."""
        await fail_lost_jobs(self.app, bot)
        async with advisory_lock(self.conninfo, ENQUEUE_LOCK, wait=True):
            active = await active_job(self.app)
            if active is not None:
                await message.reply_text(admin_replies.retrain_busy(busy_progress(active)))
                return
            status = await message.reply_text(admin_replies.retrain_queued())
            try:
                job_id = await self.app.configure_task(
                    TASK, queue=QUEUE, lock=LOCK, queueing_lock=LOCK
                ).defer_async(
                    chat_id=message.chat_id,
                    command_message_id=message.message_id,
                    status_message_id=status.message_id,
                    action=action,
                    epochs=epochs,
                    language=i18n.current_language(),
                    queued_at=time.time(),
                )
            except queue_errors.AlreadyEnqueued:  # one queued outside this lock (an old replica)
                await status.edit_text(admin_replies.retrain_busy(admin_replies.retrain_queued()))
                return
        logger.info("retrain %s (%d epochs) queued as job %s", action, epochs, job_id)

    async def cancel(self, bot: Bot, message: Message) -> None:
        """Answer /retrain cancel: cancel the queued job, or ask the worker to stop its run."""
        await fail_lost_jobs(self.app, bot)
        active = await active_job(self.app)
        if active is None:
            await message.reply_text(admin_replies.retrain_nothing_to_cancel())
            return
        await self.app.job_manager.cancel_job_by_id_async(active.id, abort=True)
        status = await self.app.job_manager.get_job_status_async(active.id)
        logger.info("retrain job %s: cancel asked, now %s", active.id, status.value)
        if status == Status.CANCELLED:  # no worker had taken it: tell here
            arguments = active.arguments
            await reply(
                bot,
                int(arguments["chat_id"]),
                int(arguments["command_message_id"]),
                admin_replies.retrain_cancelled(),
            )
        # else the worker stops the training and answers, as a local /retrain's supervisor does


def busy_progress(active: ActiveJob) -> str:
    """What a second /retrain is told about the job that holds the slot."""
    if active.started is None:
        return admin_replies.retrain_queued()
    return admin_replies.retrain_running_for(active.started)
