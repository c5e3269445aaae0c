"""Start-up checks of `digitbot run`: each failure is one line that says what to do.

Before the Application starts, one getMe call through a throwaway Bot checks the token and that
the Bot API answers: a wrong token, an unreachable server or a malformed TELEGRAM_API_URL then
stop the start with a `ValueError` whose message the CLI prints as one line — no traceback, no
token (PTB's own error names it, so its text is never shown) — instead of the Application's
retry loop logging several tracebacks. Failures after that point (a webhook port in use, a
feedback store that cannot be opened) are turned into one line by `explain`.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from bot.settings import Settings

CHECK_TIMEOUT_SECONDS = 15.0


def redacted(text: str, settings: Settings) -> str:
    """`text` without the token (an error from the HTTP stack may quote a URL that holds it)."""
    if settings.telegram_bot_token is not None:
        text = text.replace(settings.telegram_bot_token.get_secret_value(), "<token>")
    return text


def explain(error: BaseException, settings: Settings) -> str:
    """One line for a start-up failure: what went wrong and what to do."""
    url = settings.telegram_api_url
    if isinstance(error, InvalidToken):
        return (
            f"the Bot API at {url} rejected TELEGRAM_BOT_TOKEN: copy the token again from "
            "@BotFather (/mybots → your bot → API Token) into .env or the environment"
        )
    if isinstance(error, TimedOut | NetworkError):
        reason = redacted(str(error) or type(error).__name__, settings)
        return (
            f"cannot reach the Bot API at {url} ({reason}): check the internet connection "
            "(a proxy or firewall?) or TELEGRAM_API_URL; without a token, `digitbot start` "
            "opens the offline sandbox"
        )
    if isinstance(error, TelegramError):
        return f"the Bot API at {url} refused to start the bot: {redacted(str(error), settings)}"
    if isinstance(error, OSError) and settings.webhook_url:
        return (
            f"cannot listen on {settings.webhook_listen}:{settings.webhook_port} for the "
            f"webhook ({error.strerror or error}): choose another WEBHOOK_PORT"
        )
    return redacted(f"the bot could not start: {type(error).__name__}: {error}", settings)


async def _get_me(settings: Settings) -> str:
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=f"{settings.telegram_api_url}/bot",
        base_file_url=f"{settings.telegram_api_url}/file/bot",
        request=HTTPXRequest(
            connect_timeout=CHECK_TIMEOUT_SECONDS, read_timeout=CHECK_TIMEOUT_SECONDS
        ),
    )
    async with bot:  # initialize() calls getMe
        return bot.username


def check_bot_api(settings: Settings) -> str:
    """The bot's username, after one getMe; `ValueError` (one line) when that fails."""
    # httpx would log the request URL, which holds the token, were its logger at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return asyncio.run(_get_me(settings))
    except TelegramError as error:
        raise ValueError(explain(error, settings)) from None
