"""The emulator's state (users, chats and their messages) and the helpers every side uses.

`EmulatorState` is the base of the user side (bot/sandbox/emulator/users.py) and the bot side
(bot/sandbox/emulator/bot_side.py); `BotApiEmulator` (server.py) sets every attribute it names.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterable
from typing import Any

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.events import EventHub
from bot.sandbox.emulator.params import Params, get_chat_id
from bot.sandbox.emulator.store import ChatState, FileStore
from bot.sandbox.emulator.updates import UpdateQueue
from bot.sandbox.emulator.webhooks import DeliveryOptions, WebhookDelivery

Message = dict[str, Any]


class EmulatorState:
    """What both sides of the emulator read and change; see the module docstring."""

    token: str
    bot_username: str
    bot_id: int
    bot_user: dict[str, Any]
    can_read_all_group_messages: bool
    max_messages_per_chat: int
    max_pending_updates: int
    # callback_query_id -> the bot's answer (None until answered); oldest dropped.
    callback_answers: dict[str, dict[str, Any] | None]
    # setWebhook's url, secret_token and max_connections (None: no webhook).
    webhook: dict[str, Any] | None
    # False: setWebhook only records the webhook (a test posts updates itself); True: it delivers.
    deliver_webhooks: bool
    webhook_delivery_options: DeliveryOptions  # WebhookDelivery's timeout and retry waits
    _delivery: WebhookDelivery | None
    _me: dict[str, Any]
    _users: dict[int, dict[str, Any]]
    _chats: dict[int, ChatState]
    _files: FileStore
    _updates: UpdateQueue
    _events: EventHub
    _commands: dict[tuple[str, str], list[dict[str, str]]]
    _stopping: asyncio.Event

    def _chat(self, chat_id: int) -> ChatState:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}; add it with add_user or add_group first")
        return chat

    def _user(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}; add it with add_user first")
        return user

    def _api_chat(self, params: Params) -> ChatState:
        chat_id = get_chat_id(params)
        if isinstance(chat_id, str):
            wanted = chat_id[1:].lower()
            for named in self._chats.values():
                if str(named.chat.get("username", "")).lower() == wanted:
                    return named
            raise ApiError(400, "Bad Request: chat not found")
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def chats(self) -> list[dict[str, Any]]:
        """Every chat (Telegram Chat objects), in the order they were added."""
        return [copy.deepcopy(chat.chat) for chat in self._chats.values()]

    def users(self) -> list[dict[str, Any]]:
        """Every user (Telegram User objects), in the order they were added."""
        return copy.deepcopy(list(self._users.values()))

    def messages(self, chat_id: int) -> list[Message]:
        """All stored messages of the chat, oldest first, in their current state (copies)."""
        return copy.deepcopy(list(self._chat(chat_id).messages.values()))

    def file_bytes(self, file_id: str) -> bytes:
        """The stored content of a file (a PhotoSize, Document or thumbnail file_id)."""
        stored = self._files.get(file_id)
        if stored is None:
            raise ValueError(f"unknown or dropped file_id {file_id!r}")
        return stored.data

    def group_settings(self, chat_id: int) -> dict[str, Any]:
        """A group's privacy mode, whether the bot is an admin there, and its admin user ids."""
        chat = self._chat(chat_id)
        if chat.is_private:
            raise ValueError(f"chat {chat_id} is a private chat, not a group")
        return {
            "privacy": chat.privacy,
            "bot_is_admin": chat.bot_is_admin,
            "admin_user_ids": sorted(chat.admin_user_ids),
        }

    def configure_group(
        self,
        chat_id: int,
        *,
        privacy: bool | None = None,
        bot_is_admin: bool | None = None,
        admin_user_ids: Iterable[int] | None = None,
    ) -> dict[str, Any]:
        """Change a group's settings (None keeps one), as a group owner can; returns them."""
        chat = self._chat(chat_id)
        if chat.is_private:
            raise ValueError(f"chat {chat_id} is a private chat, not a group")
        if privacy is not None:
            chat.privacy = privacy
        if bot_is_admin is not None:
            chat.bot_is_admin = bot_is_admin
        if admin_user_ids is not None:
            admins = {self._user(user_id)["id"] for user_id in admin_user_ids}
            chat.admin_user_ids = admins
            chat.member_ids |= admins
        return self.group_settings(chat_id)

    def bot_commands(self, chat_id: int | None = None) -> list[dict[str, str]]:
        """The command menu a client shows in a chat: the bot's commands for that chat's scope
        if it set some (setMyCommands with BotCommandScopeChat), else its default commands."""
        keys = [json.dumps({"type": "default"}, sort_keys=True)]
        if chat_id is not None:
            keys.insert(0, json.dumps({"chat_id": chat_id, "type": "chat"}, sort_keys=True))
        for key in keys:
            if (key, "") in self._commands:
                return copy.deepcopy(self._commands[(key, "")])
        return []

    def _store_message(
        self,
        chat: ChatState,
        sender: dict[str, Any],
        content: dict[str, Any],
        *,
        reply_to: Message | None = None,
        reply_markup: dict[str, Any] | None = None,
        media_group_id: str | None = None,
    ) -> Message:
        message: Message = {
            "message_id": chat.next_message_id,
            "from": copy.deepcopy(sender),
            "chat": copy.deepcopy(chat.chat),
            "date": int(time.time()),
        }
        chat.next_message_id += 1
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        if reply_to is not None:
            # Telegram embeds the replied message one level deep.
            embedded = copy.deepcopy(reply_to)
            embedded.pop("reply_to_message", None)
            message["reply_to_message"] = embedded
        message.update(copy.deepcopy(content))
        if reply_markup is not None:
            message["reply_markup"] = copy.deepcopy(reply_markup)
        chat.add_message(message, self.max_messages_per_chat)
        self._events.emit({"type": "new_message", "chat_id": chat.chat_id, "message": message})
        return message
