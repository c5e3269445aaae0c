"""Starting and stopping an Application outside `run_polling`: what the sandbox, the webhook
server, the benches and the tests share. No bot wiring here (that is bot/app.py)."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]  # edits are ignored on purpose
AnyApplication = Application[Any, Any, Any, Any, Any, Any]


async def start_polling(
    application: AnyApplication, *, timeout: int, poll_interval: float = 0.0
) -> None:
    """What `Application.run_polling` does before it waits, in the caller's event loop."""
    await application.initialize()  # a no-op when it already is
    if application.post_init is not None:
        await application.post_init(application)
    if application.updater is None:
        raise ValueError("the Application was built without an Updater: it cannot poll")
    await application.updater.start_polling(
        poll_interval=poll_interval, timeout=timeout, allowed_updates=ALLOWED_UPDATES
    )
    await application.start()


async def stop_application(application: AnyApplication) -> None:
    """What `Application.run_polling` does on exit (the sandbox, benchmarks and tests share it)."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    if application.post_stop is not None:
        await application.post_stop(application)
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)
