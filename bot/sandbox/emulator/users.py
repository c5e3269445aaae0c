"""The user side of the emulator: people and groups, and what they send (in-process calls)."""

from __future__ import annotations

import copy
import hashlib
import secrets
import time
from collections.abc import Iterable
from typing import Any

from bot.sandbox.emulator.chats import EmulatorState, Message
from bot.sandbox.emulator.formatting import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    detect_entities,
    entity_text,
    text_fields,
    trim_text,
)
from bot.sandbox.emulator.store import ChatState
from bot.sandbox.emulator.uploads import store_document, store_photo

# Who an anonymous group admin's messages come from: one user shared by all of them.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}


class UserSide(EmulatorState):
    """Tests and the sandbox page act as users through these methods (plain, not async)."""

    def add_user(
        self,
        user_id: int,
        first_name: str,
        username: str | None = None,
        *,
        last_name: str | None = None,
        language_code: str | None = "en",
    ) -> dict[str, Any]:
        """Create (or update) a user and their private chat with the bot; returns the User."""
        if user_id <= 0 or user_id == self.bot_id:
            raise ValueError(f"user_id must be a positive id other than the bot's, got {user_id}")
        if not first_name:
            raise ValueError("first_name must not be empty")
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        private: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
        for key, value in (("last_name", last_name), ("username", username)):
            if value:
                user[key] = value
                private[key] = value
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        if user_id in self._chats:
            self._chats[user_id].chat = private
        else:
            self._chats[user_id] = ChatState(chat=private, member_ids={user_id})
            self._events.emit({"type": "new_chat", "chat": private})
        return copy.deepcopy(user)

    def add_group(
        self,
        chat_id: int,
        title: str,
        privacy: bool = True,
        bot_is_admin: bool = False,
        *,
        username: str | None = None,
        admin_user_ids: Iterable[int] = (),
    ) -> dict[str, Any]:
        """Create a group with the bot in it; returns the Chat.

        A chat id starting with -100 is a supergroup, any other negative id a basic group.
        `privacy` is the bot's privacy mode there (also off when getMe says
        can_read_all_group_messages); an admin bot sees everything, as in Telegram.
        """
        if chat_id >= 0:
            raise ValueError(f"group chat ids are negative, got {chat_id}")
        if not title:
            raise ValueError("title must not be empty")
        if chat_id in self._chats:
            raise ValueError(f"chat {chat_id} already exists")
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        chat: dict[str, Any] = {"id": chat_id, "type": kind, "title": title}
        if username:
            if kind != "supergroup":
                raise ValueError("only a supergroup (id -100...) can have a username")
            chat["username"] = username
        admins = set(admin_user_ids)
        self._chats[chat_id] = ChatState(
            chat=chat,
            privacy=privacy,
            bot_is_admin=bot_is_admin,
            admin_user_ids=admins,
            member_ids=set(admins),
        )
        self._events.emit({"type": "new_chat", "chat": chat})
        return copy.deepcopy(chat)

    def _user_chat(self, chat_id: int, user_id: int) -> tuple[ChatState, dict[str, Any]]:
        user = self._user(user_id)
        chat = self._chat(chat_id)
        if chat.is_private and chat_id != user_id:
            raise ValueError(f"user {user_id} cannot write in the private chat of user {chat_id}")
        chat.member_ids.add(user_id)
        return chat, user

    @staticmethod
    def _user_reply_target(chat: ChatState, reply_to_message_id: int | None) -> Message | None:
        if reply_to_message_id is None:
            return None
        target = chat.messages.get(reply_to_message_id)
        if target is None:
            raise ValueError(f"no message {reply_to_message_id} in chat {chat.chat_id} to reply to")
        return target

    def _user_caption(self, caption: str | None) -> dict[str, Any]:
        if caption is None:
            return {}
        if len(caption) > MAX_CAPTION_LENGTH:
            raise ValueError(f"caption longer than {MAX_CAPTION_LENGTH} characters")
        text, entities = trim_text(caption, detect_entities(caption))
        return text_fields(text, entities, "caption", "caption_entities")

    def _bot_receives(self, chat: ChatState, message: Message) -> bool:
        """Whether Telegram delivers this user message to the bot (group privacy mode)."""
        if (
            chat.is_private
            or not chat.privacy
            or chat.bot_is_admin
            or self.can_read_all_group_messages
        ):
            return True
        text = message.get("text") or message.get("caption") or ""
        entities = message.get("entities") or message.get("caption_entities") or []
        own_name = self.bot_username.lower()
        for entity in entities:
            covered = entity_text(text, entity)
            if entity["type"] == "bot_command" and entity["offset"] == 0:
                _, _, addressee = covered.partition("@")
                if not addressee or addressee.lower() == own_name:
                    return True
            if entity["type"] == "mention" and covered[1:].lower() == own_name:
                return True
            if entity["type"] == "text_mention" and entity.get("user", {}).get("id") == self.bot_id:
                return True
        replied = message.get("reply_to_message")
        return bool(replied and replied.get("from", {}).get("id") == self.bot_id)

    def _user_posts(
        self,
        chat: ChatState,
        user: dict[str, Any],
        content: dict[str, Any],
        reply_to: Message | None,
    ) -> Message:
        """Store what a user sent, deliver it to the bot; a copy for the caller."""
        message = self._store_message(chat, user, content, reply_to=reply_to)
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

    def _deliver(self, chat: ChatState, message: Message, kind: str) -> None:
        if self._bot_receives(chat, message):
            self._updates.push(kind, message)

    def send_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        reply_to_message_id: int | None = None,
        *,
        anonymous: bool = False,
    ) -> Message:
        """A user sends a text message; returns the Message (the bot gets it if Telegram would).
        `anonymous`: a group admin writing as the group (Telegram's GroupAnonymousBot)."""
        chat, user = self._user_chat(chat_id, user_id)
        if anonymous:
            if chat.chat["type"] == "private":
                raise ValueError("only a group admin can write anonymously")
            user = dict(GROUP_ANONYMOUS_BOT)
        if not text or not text.strip():
            raise ValueError("a message text must not be empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise ValueError(f"a message text must be at most {MAX_TEXT_LENGTH} characters")
        plain, entities = trim_text(text, detect_entities(text))
        reply_to = self._user_reply_target(chat, reply_to_message_id)
        content = text_fields(plain, entities, "text", "entities")
        if anonymous:
            content["sender_chat"] = copy.deepcopy(chat.chat)
        return self._user_posts(chat, user, content, reply_to)

    def send_photo(
        self,
        chat_id: int,
        user_id: int,
        image: bytes,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> Message:
        """A user sends a photo: re-encoded into JPEG PhotoSizes (90/320/800/1280) like Telegram."""
        chat, user = self._user_chat(chat_id, user_id)
        reply_to = self._user_reply_target(chat, reply_to_message_id)
        content = {"photo": store_photo(self._files, image), **self._user_caption(caption)}
        return self._user_posts(chat, user, content, reply_to)

    def send_document(
        self,
        chat_id: int,
        user_id: int,
        data: bytes,
        file_name: str = "file",
        mime_type: str | None = None,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> Message:
        """A user sends a file as a document (bytes kept as sent; images get a thumbnail)."""
        chat, user = self._user_chat(chat_id, user_id)
        reply_to = self._user_reply_target(chat, reply_to_message_id)
        document = store_document(self._files, data, file_name, mime_type)
        content = {"document": document, **self._user_caption(caption)}
        return self._user_posts(chat, user, content, reply_to)

    def edit_text(self, chat_id: int, message_id: int, text: str) -> Message:
        """A user edits their text message; the bot gets an edited_message update."""
        chat = self._chat(chat_id)
        message = chat.messages.get(message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        if message["from"]["id"] == self.bot_id:
            raise ValueError("the bot's own messages are edited through the Bot API")
        if "text" not in message:
            raise ValueError(f"message {message_id} has no text to edit")
        if not text or not text.strip() or len(text) > MAX_TEXT_LENGTH:
            raise ValueError(f"a message text must have 1 to {MAX_TEXT_LENGTH} characters")
        plain, entities = trim_text(text, detect_entities(text))
        if plain == message["text"]:
            raise ValueError("message is not modified")
        message.pop("entities", None)
        message.update(text_fields(plain, entities, "text", "entities"))
        message["edit_date"] = int(time.time())
        self._events.emit({"type": "edited_message", "chat_id": chat_id, "message": message})
        self._deliver(chat, message, "edited_message")
        return copy.deepcopy(message)

    def press_button(
        self, chat_id: int, message_id: int, user_id: int, callback_data: str
    ) -> dict[str, Any]:
        """A user presses an inline button of a bot message; returns the CallbackQuery."""
        chat, user = self._user_chat(chat_id, user_id)
        message = chat.messages.get(message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        rows = message.get("reply_markup", {}).get("inline_keyboard", [])
        data = [button.get("callback_data") for row in rows for button in row]
        if callback_data not in data:
            raise ValueError(
                f"message {message_id} has no button with callback_data {callback_data!r}; "
                f"its buttons carry {[item for item in data if item is not None]}"
            )
        query_id = str(secrets.randbits(63))
        instance = int.from_bytes(hashlib.sha256(f"{self.token}/{chat_id}".encode()).digest()[:8])
        callback_query = {
            "id": query_id,
            "from": copy.deepcopy(user),
            "message": copy.deepcopy(message),
            "chat_instance": str(instance - 2**63),
            "data": callback_data,
        }
        self.callback_answers[query_id] = None
        while len(self.callback_answers) > self.max_pending_updates:
            del self.callback_answers[next(iter(self.callback_answers))]
        self._updates.push("callback_query", callback_query)
        return copy.deepcopy(callback_query)
