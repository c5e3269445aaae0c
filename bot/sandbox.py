"""The offline sandbox (`make run` without a token): a placeholder until it is built.

The sandbox will run the real bot against the local Bot API emulator with a web chat page.
"""

from __future__ import annotations

from bot.settings import Settings


def run_sandbox(settings: Settings) -> int:
    """Start the offline sandbox; for now, say clearly that it does not exist yet."""
    raise ValueError(
        "the sandbox is not built yet; set TELEGRAM_BOT_TOKEN (environment or .env) to run the "
        "real bot with `digitbot run`"
    )
