"""Flood limits beyond images: commands and button presses per user, and each user's share of a
group's message budget.

Telegram lets a bot send 20 messages a minute to one group, and PTB's AIORateLimiter queues the
rest in arrival order, so one member's 30 button presses (each edits a message) delayed another
member's photo answer by half a minute. Two gates, checked before anything is sent or stored:

- ACTION_FLOOD_LIMIT: commands and button presses per user per FLOOD_WINDOW_SECONDS, any chat;
- GROUP_USER_SHARE_PER_MINUTE: what one user may make the bot answer in one group per minute
  (commands, presses, images).

Past either, a command or image gets one polite reply and a press one notice per window
(answerCallbackQuery is not a group message); the rest is ignored, never queued. So one user
puts at most share + 1 messages a minute into a group's queue, and another member's answer waits
behind at most that many: (share + 1) x 60 / RATE_LIMIT_GROUP_PER_MINUTE seconds.

Every gate counts through `count`: in this process's memory, or, on a replica (REPLICA_ID), in
the counters all replicas share (bot/cluster/flood.py).
"""

from __future__ import annotations

from collections.abc import Hashable

from telegram import Chat, Message, Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, filters

from bot import replies
from bot.state import BotContext, BotState, FloodGate, FloodVerdict

SHARE_WINDOW_SECONDS = 60.0


def worst(*verdicts: FloodVerdict) -> FloodVerdict:
    """DROP over WARN over ALLOW."""
    for verdict in (FloodVerdict.DROP, FloodVerdict.WARN):
        if verdict in verdicts:
            return verdict
    return FloodVerdict.ALLOW


async def count(
    state: BotState, gate: FloodGate, name: str, key: Hashable
) -> tuple[FloodVerdict, float]:
    """Count one request of `key` at `gate` (its limit and window; `name` in the shared
    counters): the verdict, and the seconds until `key` may send again (0 when allowed)."""
    if state.shared_flood is not None:
        return await state.shared_flood.count(name, key, gate.limit, gate.window)
    verdict = gate.check(key)
    return verdict, 0.0 if verdict is FloodVerdict.ALLOW else gate.seconds_until_free(key)


async def group_share(
    state: BotState, user_id: int, chat: Chat | None
) -> tuple[FloodVerdict, float]:
    """Count one answer for `user_id` in `chat` against their share of a group's messages."""
    if chat is None or chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
        return FloodVerdict.ALLOW, 0.0
    return await count(state, state.group_shares, "group_shares", (user_id, chat.id))


def group_share_reply(state: BotState, wait: float) -> str:
    share = state.settings.group_user_share_per_minute
    return replies.group_flood(share, SHARE_WINDOW_SECONDS, wait)


def is_our_command(update: Update, bot_username: str) -> bool:
    """A command for this bot (`/help`, `/help@thisbot`), not one for another bot in a group."""
    message = update.message
    if message is None or not filters.COMMAND.check_update(update) or not message.text:
        return False
    command = message.text.split(maxsplit=1)[0]
    return "@" not in command or command.lower().endswith(f"@{bot_username.lower()}")


async def on_update(update: Update, context: BotContext) -> None:
    """Count a command or button press against its sender's limits; past one, stop the update."""
    user = update.effective_user
    query = update.callback_query
    if user is None or not (query is not None or is_our_command(update, context.bot.username)):
        return
    state = context.state
    chat = update.effective_chat
    in_actions, actions_wait = await count(state, state.actions, "actions", user.id)
    in_group, group_wait = FloodVerdict.ALLOW, 0.0
    if in_actions is FloodVerdict.ALLOW:
        in_group, group_wait = await group_share(state, user.id, chat)
    verdict = worst(in_actions, in_group)
    if verdict is FloodVerdict.ALLOW:
        return
    if verdict is FloodVerdict.WARN:
        if in_actions is FloodVerdict.WARN or chat is None:
            settings = state.settings
            text = replies.action_flood(
                settings.action_flood_limit, settings.flood_window_seconds, actions_wait
            )
        else:
            text = group_share_reply(state, group_wait)
        if query is not None:
            await query.answer(text, show_alert=True)
        elif isinstance(update.effective_message, Message):
            await update.effective_message.reply_text(text)
    raise ApplicationHandlerStop
