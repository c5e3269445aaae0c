"""The offline sandbox (`digitbot sandbox`; `make run` without a token): the real bot in a browser.

One process, one event loop: the local Bot API emulator serves a web chat page on
SANDBOX_HOST:SANDBOX_PORT, a few simulated people and a group chat live in it, and the bot built by
`build_application` polls it through TELEGRAM_API_URL exactly as it polls api.telegram.org. The
bot has no idea it is in a sandbox: same handlers, same replies, same /stats and /retrain.

The sandbox decides what the bot reads from its settings: the token (a random one per run that
the emulator accepts), ADMIN_USER_IDS (the sandbox admin, switchable on the page; the page changes
the running bot's settings object, as editing .env and restarting would), and its own data: a copy
of the model folder and a feedback store in SANDBOX_DATA_DIR, so that corrections and /retrain in
the sandbox never change the shipped model or the real bot's store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bot.app import build_application, configure_logging
from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.emulator.web import Page, add_page
from bot.settings import Settings
from bot.state import BotApplication, get_state
from bot.transport.lifecycle import start_polling, stop_application
from core import registry

logger = logging.getLogger(__name__)

BOT_ID = 7000000001
BOT_USERNAME = "digitbot_sandbox_bot"
BOT_FIRST_NAME = "DigitBot"
# (user id, first name, username); the first person is the bot admin at start.
PEOPLE = (
    (1001, "Alice", "alice"),
    (1002, "Bob", "bob"),
    (1003, "Carol", "carol"),
    (1004, "Dan", "dan"),
)
ADMIN_USER_ID = PEOPLE[0][0]
GROUP_CHAT_ID = -1001000000001
GROUP_TITLE = "Digit fans"
POLL_TIMEOUT_SECONDS = 10  # long polling against the local emulator; stop wakes it at once


@dataclass
class Sandbox:
    """A running sandbox: the emulator with its page, and the bot application polling it."""

    emulator: BotApiEmulator
    page: Page
    application: BotApplication
    bot_settings: Settings  # the settings the bot runs with (token, API URL, admins replaced)
    url: str  # the page, e.g. http://127.0.0.1:8080/


def populate(emulator: BotApiEmulator) -> None:
    """The simulated people (each with a private chat with the bot) and one group, Alice its admin;
    the others join the group when they first write there."""
    for user_id, first_name, username in PEOPLE:
        emulator.add_user(user_id, first_name, username)
    emulator.add_group(
        GROUP_CHAT_ID,
        GROUP_TITLE,
        privacy=True,
        bot_is_admin=False,
        admin_user_ids=[ADMIN_USER_ID],
    )


def page_url(host: str, bound_url: str) -> str:
    """The address to open: a wildcard bind address is reached through 127.0.0.1."""
    port = bound_url.rsplit(":", 1)[1]
    if host in ("0.0.0.0", "::", ""):
        return f"http://127.0.0.1:{port}/"
    return f"{bound_url}/"


def sandbox_data(settings: Settings) -> dict[str, object]:
    """The sandbox's model folder and store in SANDBOX_DATA_DIR, created on first use: a copy of
    MODEL_DIR's complete versions and CURRENT (delete the folder to start again)."""
    data = Path(settings.sandbox_data_dir)
    models = data / "models"
    if not registry.list_versions(models):
        source = Path(settings.model_dir)
        served = registry.current_version(source)  # a clear error if there is nothing to copy
        models.mkdir(parents=True, exist_ok=True)
        for version in registry.list_versions(source):
            shutil.copytree(source / version, models / version, dirs_exist_ok=True)
        (models / registry.CURRENT_FILE).write_text(served + "\n", encoding="utf-8")
        logger.info("sandbox: copied the model folder %s to %s", source, models)
    return {
        "model_dir": models,
        "database_url": f"sqlite:///{data / 'feedback.sqlite3'}",
        "data_dir": data,  # its salt too
    }


async def start_sandbox(settings: Settings) -> Sandbox:
    """Start the emulator and its page, then the bot polling it; the caller must `stop_sandbox`."""
    # A new token each run: a web page cannot post to the Bot API half with a token it knows.
    token = f"{BOT_ID}:{secrets.token_urlsafe(24)}"
    emulator = BotApiEmulator(token, BOT_USERNAME, bot_first_name=BOT_FIRST_NAME)
    populate(emulator)
    wildcard = settings.sandbox_host in ("0.0.0.0", "::", "")
    page = add_page(
        emulator,
        admin_user_ids=[ADMIN_USER_ID],
        current_user_id=ADMIN_USER_ID,
        host_names=() if wildcard else [settings.sandbox_host],
    )
    try:
        bound_url = await emulator.start(settings.sandbox_host, settings.sandbox_port)
    except OSError as error:
        raise ValueError(
            f"cannot serve the sandbox on {settings.sandbox_host}:{settings.sandbox_port} "
            f"({error.strerror or error}); choose another port with SANDBOX_PORT"
        ) from error
    application: BotApplication | None = None
    try:
        api_url = page_url(settings.sandbox_host, bound_url).rstrip("/")
        bot_settings = settings.model_copy(
            update={
                "telegram_bot_token": SecretStr(token),
                "telegram_api_url": api_url,
                "admin_user_ids": [ADMIN_USER_ID],
                **sandbox_data(settings),
            }
        )
        application = build_application(bot_settings)
        # The handlers read the settings object kept in the bot's state: the admin switch on the
        # page changes that very object.
        running_settings = get_state(application.bot_data).settings

        def set_admins(admin_user_ids: list[int]) -> None:
            running_settings.admin_user_ids = list(admin_user_ids)

        page.on_admins_changed = set_admins
        await start_polling(application, timeout=POLL_TIMEOUT_SECONDS)
    except BaseException:
        if application is not None:
            with contextlib.suppress(Exception):  # the original error matters more
                await stop_application(application)
        await emulator.stop()
        raise
    return Sandbox(
        emulator=emulator,
        page=page,
        application=application,
        bot_settings=running_settings,
        url=f"{api_url}/",
    )


async def stop_sandbox(sandbox: Sandbox) -> None:
    """Stop the bot, then the emulator and its page."""
    try:
        await stop_application(sandbox.application)
    finally:
        await sandbox.emulator.stop()


async def serve_sandbox(settings: Settings) -> None:
    """Run the sandbox until cancelled (Ctrl-C or SIGTERM)."""
    sandbox = await start_sandbox(settings)
    print(
        f"Open {sandbox.url} in your browser  (sandbox bot @{BOT_USERNAME}; Ctrl-C stops)",
        flush=True,
    )
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main_task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals on Windows
            loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        await stop_sandbox(sandbox)


def run_sandbox(settings: Settings) -> int:
    """`digitbot sandbox`: serve the page and run the bot until Ctrl-C; returns the exit status."""
    configure_logging(settings)
    # Ctrl-C cancels serve_sandbox (which stops everything), then asyncio.run re-raises it.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve_sandbox(settings))
    print("sandbox stopped", flush=True)
    return 0
