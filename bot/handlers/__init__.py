"""The Telegram update callbacks, one module per kind of message they answer."""

from __future__ import annotations

from telegram import Message, Update


def message_of(update: Update) -> Message:
    """The message a callback answers: its handler only sees updates that carry one."""
    if update.effective_message is None:
        raise ValueError(f"update {update.update_id} carries no message")
    return update.effective_message
