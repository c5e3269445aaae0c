"""Fixtures for the bot's end-to-end tests: the Bot API emulator on 127.0.0.1 and the real bot.

`start_bot(**settings)` builds the Application with `bot.app.build_application`, exactly as
`digitbot run` does, and runs it the way `run_polling` would (initialize, post_init, polling,
start; then the reverse), against the emulator through TELEGRAM_API_URL and a private copy of the
model folder.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_application
from bot.feedback.store import FeedbackStore
from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.runner import Sandbox, start_sandbox, stop_sandbox
from bot.settings import Settings
from bot.state import BotApplication, BotState, get_state
from bot.tools.cluster import postgres_schema
from bot.transport.lifecycle import ALLOWED_UPDATES, stop_application
from bot.transport.webhook import start_webhook, webhook_config

TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "digitbot_test_bot"
ADMIN_ID = 1001
USER_ID = 2002
OTHER_USER_ID = 3003
GROUP_ID = -100123  # privacy mode on, bot not admin: Telegram's default
OPEN_GROUP_ID = -100456  # privacy mode off: the bot receives every message


@dataclass
class RunningBot:
    application: BotApplication
    emulator: BotApiEmulator
    settings: Settings

    @property
    def state(self) -> BotState:
        return get_state(self.application.bot_data)


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(token=TOKEN, bot_username=BOT_USERNAME)
    await emulator.start(host="127.0.0.1", port=0)
    emulator.add_user(ADMIN_ID, "Ada", "ada")
    emulator.add_user(USER_ID, "Bob", "bob")
    emulator.add_user(OTHER_USER_ID, "Cy <b>", "cy")
    emulator.add_group(GROUP_ID, "Digits club", privacy=True, bot_is_admin=False)
    emulator.add_group(OPEN_GROUP_ID, "Open digits", privacy=False, bot_is_admin=False)
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
def bot_settings(
    emulator: BotApiEmulator, model_dir: Path, mnist_path: Path, tmp_path: Path
) -> dict[str, Any]:
    """Settings for a test bot; tests override single fields through start_bot(**fields)."""
    return {
        "telegram_bot_token": TOKEN,
        "telegram_api_url": emulator.url,
        "admin_user_ids": [ADMIN_ID],
        "model_dir": model_dir,
        "mnist_path": mnist_path,
        "heartbeat_file": tmp_path / "heartbeat",
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        "feedback_salt": "test-salt",
        "flood_limit": 1000,
        "action_flood_limit": 1000,
        "group_user_share_per_minute": 1000,
        "retrain_arch": "seed",
        "retrain_epochs": 1,
        "retrain_train_limit": 2000,
    }


@pytest.fixture
async def start_bot(
    emulator: BotApiEmulator, bot_settings: dict[str, Any]
) -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
    """A factory: `await start_bot(group_mode="all")` -> a polling bot, stopped at teardown."""
    running: list[BotApplication] = []
    servers: list[Any] = []

    async def start(*, webhook: bool = False, **overrides: Any) -> RunningBot:
        settings = Settings(_env_file=None, **{**bot_settings, **overrides})
        application = build_application(settings)
        await application.initialize()
        running.append(application)
        if application.post_init is not None:
            await application.post_init(application)
        if webhook:
            servers.append(await start_webhook(application, webhook_config(settings)))
        else:
            await application.updater.start_polling(
                poll_interval=0.0, timeout=1, allowed_updates=ALLOWED_UPDATES
            )
        await application.start()
        return RunningBot(application, emulator, settings)

    try:
        yield start
    finally:
        for server in servers:
            await server.cleanup()
        for application in running:
            await stop_application(application)


@pytest.fixture
async def sandbox(model_dir: Path, mnist_path: Path, tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The offline sandbox (what `digitbot sandbox` runs) on a free port, with its own store."""
    settings = Settings(
        _env_file=None,
        sandbox_port=0,
        model_dir=model_dir,
        mnist_path=mnist_path,
        heartbeat_file=None,
        data_dir=tmp_path / "data",
        flood_limit=1000,
        action_flood_limit=1000,
        group_user_share_per_minute=1000,
        sandbox_data_dir=tmp_path / "sandbox",  # its copy of model_dir and its store
    )
    running = await start_sandbox(settings)
    try:
        yield running
    finally:
        await stop_sandbox(running)


POSTGRES_ENV = "TEST_DATABASE_URL"


def postgres_base_url() -> str:
    """TEST_DATABASE_URL, or fail (CI) / skip (elsewhere) with the reason."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url
    message = (
        f"{POSTGRES_ENV} is not set, so the PostgreSQL half of the feedback-store tests cannot "
        f'run; start a server with `eval "$(.ci/postgres.sh)"` (as root) and rerun'
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: an SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
        return
    with postgres_schema(postgres_base_url(), prefix="test") as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections all land in a fresh, empty schema of the PostgreSQL server (the
    replicas' tests: bot/cluster/ needs PostgreSQL)."""
    with postgres_schema(postgres_base_url(), prefix="test") as url:
        yield url


def started_url(emulator: BotApiEmulator) -> str:
    """The Bot API URL of an emulator the fixture has started."""
    assert emulator.url is not None, "the emulator is not started"
    return emulator.url


def store_answer(store: FeedbackStore, **answer: Any) -> int:
    """Record one served answer (the arguments of `FeedbackStore.recording`) in a transaction
    of its own; returns its sample id."""
    return int(store.transact([store.recording(**answer)])[0])


def environment_without(*prefixes: str, **values: str) -> dict[str, str]:
    """This process's environment without the variables starting with `prefixes`, plus `values`:
    what a `digitbot` subprocess gets."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    return {**kept, **values}


async def spawn_digitbot(
    *arguments: str, cwd: Path, env: dict[str, str], output: bool = True
) -> asyncio.subprocess.Process:
    """`python -m bot.cli ARGUMENTS` as a child process; with `output`, its stdout and stderr
    together in `process.stdout`."""
    pipe = asyncio.subprocess.PIPE if output else None
    stderr = asyncio.subprocess.STDOUT if output else None
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *arguments, cwd=cwd, env=env, stdout=pipe, stderr=stderr
    )


def run_digitbot(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m bot.cli ARGUMENTS` to its end (env None: this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
