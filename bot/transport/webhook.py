"""Webhook mode (`digitbot run --webhook`): an aiohttp server that Telegram posts updates to.

Why not PTB's own webhook server: it compares the secret token with `!=` (not in constant time),
logs a wrong token, and reads the whole body before looking at the header. Here every request
must carry the secret (generated for this run and given to `setWebhook` when WEBHOOK_SECRET_TOKEN
is not set), it is compared with `hmac.compare_digest`, and the body is read only after that.

On one of several replicas (REPLICA_ID, bot/cluster/), an update is recorded in the shared
ledger before the 200: one already there is acknowledged and not handled again, and one this
replica accepted and could not handle is taken over by another.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlparse

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from telegram import Message, Update

from bot.settings import Settings
from bot.state import get_state
from bot.transport.lifecycle import ALLOWED_UPDATES, AnyApplication, stop_application
from bot.transport.updates import ImageSlotProcessor

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"  # GET: 200 while the bot takes updates (HAProxy's check, bot/cluster/)
REPLICA_KEY = "digitbot.replica"  # bot_data's Replica on one of several replicas (bot/cluster/)
MAX_UPDATE_BYTES = 1024 * 1024  # an update is a few KB of JSON; files are downloaded separately


@dataclass(frozen=True)
class WebhookConfig:
    url: str  # the public https:// address given to setWebhook
    path: str  # the path this server answers on (a reverse proxy forwards to it)
    listen: str
    port: int
    secret: str
    generated: bool  # True when no WEBHOOK_SECRET_TOKEN was set and one was made for this run


class Replica(Protocol):
    """What the webhook server needs of bot/cluster/replica.py's Replica (the ledger)."""

    async def accept(self, update: Update, body: str) -> bool: ...
    async def finished(self, update: object) -> None: ...
    async def answered(self, message: Message) -> None: ...
    def handling(self, update: Update) -> None: ...
    def start(self, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None: ...


def webhook_config(settings: Settings) -> WebhookConfig:
    """Where to listen and the secret every request must carry (ValueError without WEBHOOK_URL)."""
    if not settings.webhook_url:
        raise ValueError(
            "--webhook needs WEBHOOK_URL, the public https:// address Telegram will post updates to"
        )
    configured = settings.webhook_secret_token
    # Telegram allows 1-256 characters of A-Z a-z 0-9 _ -: token_urlsafe(32) is 43 of them.
    secret = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
    return WebhookConfig(
        url=settings.webhook_url,
        path="/" + urlparse(settings.webhook_url).path.lstrip("/"),
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        secret=secret,
        generated=configured is None,
    )


def webhook_handler(
    application: AnyApplication, secret: str, replica: Replica | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The POST handler: queue the update if the request carries the secret, else 403; with a
    `replica`, only an update the ledger did not have yet."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        # Checked first, before a byte of the body is read or parsed.
        if not hmac.compare_digest(given, expected):
            raise web.HTTPForbidden(text="wrong or missing secret token")
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="expected application/json")
        try:
            body = await request.text()
            update = Update.de_json(json.loads(body), application.bot)
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as error:
            logger.warning("webhook: an update that could not be read: %s", error)
            raise web.HTTPBadRequest(text="not a Telegram update") from error
        if update is None:
            return web.Response(text="ok")
        if replica is not None:
            try:
                fresh = await replica.accept(update, body)
            except SQLAlchemyError as error:
                logger.exception("webhook: cannot record update %d", update.update_id)
                # Not acknowledged: Telegram delivers it again, here or to another replica.
                raise web.HTTPServiceUnavailable(text="the update ledger is unreachable") from error
            if not fresh:
                return web.Response(text="ok")  # accepted before: handled by its owner
        await application.update_queue.put(update)
        return web.Response(text="ok")

    return receive


def health_handler(
    application: AnyApplication,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /healthz: 200 and "ok <the served model version>" while the bot runs and takes
    updates, else 503 (nothing secret: it needs no token; keep WEBHOOK_LISTEN private)."""

    async def health(request: web.Request) -> web.Response:
        state = get_state(application.bot_data)
        if not (state.webhook_serving and application.running):
            return web.Response(status=503, text="stopping")
        return web.Response(text=f"ok {state.classifier.version}")

    return health


async def start_webhook(application: AnyApplication, config: WebhookConfig) -> web.AppRunner:
    """Serve `config.path` on listen:port, then register the URL and secret with Telegram."""
    replica = cast("Replica | None", application.bot_data.get(REPLICA_KEY))
    server = web.Application(client_max_size=MAX_UPDATE_BYTES)
    server.router.add_post(config.path, webhook_handler(application, config.secret, replica))
    server.router.add_get(HEALTH_PATH, health_handler(application))
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.listen, config.port).start()
    if replica is not None:
        start_replica(application, replica)
    await application.bot.set_webhook(
        config.url, secret_token=config.secret, allowed_updates=ALLOWED_UPDATES
    )
    if config.generated:
        logger.info("WEBHOOK_SECRET_TOKEN is not set: using a random one for this run")
    get_state(application.bot_data).webhook_serving = True  # the heartbeat's sign of life
    return runner


def start_replica(application: AnyApplication, replica: Replica) -> None:
    """Mark each handled update done in the ledger; take over the updates of dead replicas."""
    processor = application.update_processor
    if not isinstance(processor, ImageSlotProcessor):
        raise ValueError("a replica needs bot/app.py's update processor (ImageSlotProcessor)")
    processor.on_finished = replica.finished
    get_state(application.bot_data).on_answered = replica.answered

    async def handle(payload: dict[str, Any]) -> None:
        update = Update.de_json(payload, application.bot)
        if update is not None:
            replica.handling(update)
            await application.update_queue.put(update)

    replica.start(handle)


def run_webhook(application: AnyApplication, config: WebhookConfig) -> None:
    """What `Application.run_webhook` does, with this module's server; returns on SIGINT/SIGTERM."""
    asyncio.run(_serve(application, config))


async def _serve(application: AnyApplication, config: WebhookConfig) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await application.initialize()
    runner: web.AppRunner | None = None
    try:
        if application.post_init is not None:
            await application.post_init(application)
        runner = await start_webhook(application, config)
        await application.start()
        await stopped.wait()
    finally:
        get_state(application.bot_data).webhook_serving = False  # health checks fail from now
        if runner is not None:
            await runner.cleanup()
        await stop_application(application)
