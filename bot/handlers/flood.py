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
"""

from __future__ import annotations

from telegram import Chat, Message, Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, filters

from bot import replies
from bot.state import BotContext, BotState, FloodVerdict

SHARE_WINDOW_SECONDS = 60.0


def worst(*verdicts: FloodVerdict) -> FloodVerdict:
    """DROP over WARN over ALLOW."""
    for verdict in (FloodVerdict.DROP, FloodVerdict.WARN):
        if verdict in verdicts:
            return verdict
    return FloodVerdict.ALLOW


def group_share(state: BotState, user_id: int, chat: Chat | None) -> FloodVerdict:
    """Count one answer for `user_id` in `chat` against their share of a group's messages."""
    if chat is None or chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
        return FloodVerdict.ALLOW
    return state.group_shares.check((user_id, chat.id))


def group_share_reply(state: BotState, user_id: int, chat: Chat) -> str:
    wait = state.group_shares.seconds_until_free((user_id, chat.id))
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
    in_actions = state.actions.check(user.id)
    in_group = group_share(state, user.id, chat) if in_actions is FloodVerdict.ALLOW else None
    verdict = worst(in_actions, in_group or FloodVerdict.ALLOW)
    if verdict is FloodVerdict.ALLOW:
        return
    if verdict is FloodVerdict.WARN:
        if in_actions is FloodVerdict.WARN or chat is None:
            settings = state.settings
            wait = state.actions.seconds_until_free(user.id)
            text = replies.action_flood(
                settings.action_flood_limit, settings.flood_window_seconds, wait
            )
        else:
            text = group_share_reply(state, user.id, chat)
        if query is not None:
            await query.answer(text, show_alert=True)
        elif isinstance(update.effective_message, Message):
            await update.effective_message.reply_text(text)
    raise ApplicationHandlerStop
