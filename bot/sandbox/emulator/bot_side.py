"""The bot side of the emulator: the Bot API methods the bot calls over HTTP."""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from bot.sandbox.emulator.chats import EmulatorState, Message
from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.formatting import formatted_param, text_fields
from bot.sandbox.emulator.params import (
    Params,
    Upload,
    get_bool,
    get_chat_id,
    get_inline_keyboard,
    get_integer,
    get_json,
    get_string,
)
from bot.sandbox.emulator.store import ChatState, FileStore
from bot.sandbox.emulator.updates import WEBHOOK_ACTIVE_DESCRIPTION
from bot.sandbox.emulator.uploads import document_content, input_file, photo_content
from bot.sandbox.emulator.webhooks import WebhookDelivery, webhook_settings

Handler = Callable[[Params, dict[str, Upload]], Any]
NOT_MODIFIED_DESCRIPTION = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID_DESCRIPTION = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
COMMAND_PATTERN = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files


class BotSide(EmulatorState):
    """One handler per Bot API method, `handler(params, uploads)` -> the result (or ApiError)."""

    def method_table(self) -> dict[str, tuple[str, Handler]]:
        """Lower-case method name -> (its proper name, its handler): names are case-insensitive."""
        return {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("logOut", self._return_true),
                ("close", self._return_true),
                ("getUpdates", self._get_updates),
                ("setWebhook", self._set_webhook),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("setMyCommands", self._set_my_commands),
                ("getMyCommands", self._get_my_commands),
                ("deleteMyCommands", self._delete_my_commands),
                ("getFile", self._get_file),
                ("sendMessage", self._send_message),
                ("sendPhoto", self._send_photo),
                ("sendDocument", self._send_document),
                ("sendMediaGroup", self._send_media_group),
                ("sendChatAction", self._send_chat_action),
                ("editMessageText", self._edit_message_text),
                ("editMessageCaption", self._edit_message_caption),
                ("editMessageReplyMarkup", self._edit_message_reply_markup),
                ("deleteMessage", self._delete_message),
                ("answerCallbackQuery", self._answer_callback_query),
                ("getChat", self._get_chat),
                ("getChatMember", self._get_chat_member),
                ("getChatAdministrators", self._get_chat_administrators),
            )
        }

    def _reply_target(self, chat: ChatState, params: Params) -> Message | None:
        """The message a send replies to (reply_parameters or the old reply_to_message_id)."""
        reply_parameters = get_json(params, "reply_parameters", "reply parameters")
        if reply_parameters is not None:
            if not isinstance(reply_parameters, dict):
                raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
            message_id = get_integer(reply_parameters, "message_id")
            allow_missing = get_bool(reply_parameters, "allow_sending_without_reply")
            other_chat = reply_parameters.get("chat_id")
            if other_chat is not None and get_chat_id(reply_parameters) != chat.chat_id:
                # Replies across chats are not emulated: treat the message as missing.
                message_id = -1
        else:
            message_id = get_integer(params, "reply_to_message_id")
            allow_missing = get_bool(params, "allow_sending_without_reply")
            if message_id == 0:
                return None
        target = chat.messages.get(message_id)
        if target is None and not allow_missing:
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _bot_send(
        self,
        chat: ChatState,
        content: dict[str, Any],
        reply_to: Message | None,
        reply_markup: dict[str, Any] | None,
        media_group_id: str | None = None,
    ) -> Message:
        message = self._store_message(
            chat,
            self.bot_user,
            content,
            reply_to=reply_to,
            reply_markup=reply_markup,
            media_group_id=media_group_id,
        )
        return copy.deepcopy(message)

    def _caption_fields(self, params: Params) -> dict[str, Any]:
        caption, entities = formatted_param(params, "caption", "caption_entities", what="caption")
        return text_fields(caption, entities, "caption", "caption_entities")

    def _return_true(self, params: Params, uploads: dict[str, Upload]) -> bool:
        return True

    def _get_me(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        return copy.deepcopy(self._me)

    async def _get_updates(self, params: Params, uploads: dict[str, Upload]) -> Any:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_ACTIVE_DESCRIPTION)
        return await self._updates.get_updates(params, self._stopping)

    async def _set_webhook(self, params: Params, uploads: dict[str, Upload]) -> bool:
        """Post every update to `url` from now on (an empty url removes the webhook)."""
        webhook = webhook_settings(params)
        self._updates.set_allowed_updates(get_json(params, "allowed_updates", "allowed updates"))
        if get_bool(params, "drop_pending_updates"):
            self._updates.clear()
        if webhook == self.webhook:
            return True  # the same webhook again (another replica starting): delivery goes on
        await self._stop_delivery()
        self.webhook = webhook if webhook["url"] else None
        if self.webhook is not None and self.deliver_webhooks:
            options = self.webhook_delivery_options
            self._delivery = WebhookDelivery(self._updates, **self.webhook, options=options)
            self._updates.on_push = self._delivery.wake
            self._delivery.start()
        return True

    async def _stop_delivery(self) -> None:
        self._updates.on_push = None
        if self._delivery is not None:
            await self._delivery.stop()
            self._delivery = None

    async def _delete_webhook(self, params: Params, uploads: dict[str, Upload]) -> bool:
        await self._stop_delivery()
        self.webhook = None
        if get_bool(params, "drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook["max_connections"]
        if self._delivery is not None:
            info.update(self._delivery.info())
        return info

    @staticmethod
    def _commands_key(params: Params) -> tuple[str, str]:
        scope = get_json(params, "scope", "bot command scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise ApiError(400, "Bad Request: can't parse bot command scope JSON object")
        return json.dumps(scope, sort_keys=True), get_string(params, "language_code") or ""

    def _set_my_commands(self, params: Params, uploads: dict[str, Upload]) -> bool:
        commands = get_json(params, "commands", "bot commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse bot commands JSON object")
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many bot commands specified")
        cleaned: list[dict[str, str]] = []
        for command in commands:
            if not isinstance(command, dict):
                raise ApiError(400, "Bad Request: can't parse BotCommand")
            name = str(command.get("command", "")).strip().removeprefix("/")
            description = str(command.get("description", "")).strip()
            if not COMMAND_PATTERN.match(name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        self._commands[self._commands_key(params)] = cleaned
        return True

    def _get_my_commands(self, params: Params, uploads: dict[str, Upload]) -> list[dict[str, str]]:
        return copy.deepcopy(self._commands.get(self._commands_key(params), []))

    def _delete_my_commands(self, params: Params, uploads: dict[str, Upload]) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _get_file(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        stored = self._files.get((get_string(params, "file_id") or "").strip())
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.file_size > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return stored.file_info()

    def _send_message(self, params: Params, uploads: dict[str, Upload]) -> Message:
        chat = self._api_chat(params)
        text, entities = formatted_param(params, "text", "entities", what="text")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        reply_to = self._reply_target(chat, params)
        reply_markup = get_inline_keyboard(params)
        content = text_fields(text, entities, "text", "entities")
        return self._bot_send(chat, content, reply_to, reply_markup)

    def _send_photo(self, params: Params, uploads: dict[str, Upload]) -> Message:
        return self._send_file(params, uploads, "photo", photo_content, spoiler=True)

    def _send_document(self, params: Params, uploads: dict[str, Upload]) -> Message:
        return self._send_file(params, uploads, "document", document_content)

    def _send_file(
        self,
        params: Params,
        uploads: dict[str, Upload],
        field: str,
        content_of: Callable[[FileStore, Upload | str | None], Any],
        *,
        spoiler: bool = False,
    ) -> Message:
        """sendPhoto and sendDocument: the file in `field` (an upload or a file_id), a caption."""
        chat = self._api_chat(params)
        caption = self._caption_fields(params)
        reply_to = self._reply_target(chat, params)
        reply_markup = get_inline_keyboard(params)
        source = input_file(params.get(field), uploads, field)
        content = {field: content_of(self._files, source), **caption}
        if spoiler and get_bool(params, "has_spoiler"):
            content["has_media_spoiler"] = True
        return self._bot_send(chat, content, reply_to, reply_markup)

    def _send_media_group(self, params: Params, uploads: dict[str, Upload]) -> list[Message]:
        chat = self._api_chat(params)
        media = get_json(params, "media", "media")
        if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
            raise ApiError(400, "Bad Request: can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of media in the media group")
        reply_to = self._reply_target(chat, params)
        contents: list[dict[str, Any]] = []
        for item in media:
            kind = item.get("type")
            source = input_file(item.get("media"), uploads)
            if kind == "photo":
                content: dict[str, Any] = {"photo": photo_content(self._files, source)}
            elif kind == "document":
                content = {"document": document_content(self._files, source)}
            else:
                raise ApiError(400, f"Bad Request: media type {kind!r} is not supported here")
            contents.append({**content, **self._caption_fields(item)})
        group_id = str(secrets.randbits(62))
        return [self._bot_send(chat, content, reply_to, None, group_id) for content in contents]

    def _send_chat_action(self, params: Params, uploads: dict[str, Upload]) -> bool:
        chat = self._api_chat(params)
        action = get_string(params, "action") or ""
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self._events.emit({"type": "chat_action", "chat_id": chat.chat_id, "action": action})
        return True

    def _editable(self, params: Params) -> tuple[ChatState, Message]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: inline messages are not emulated")
        chat = self._api_chat(params)
        message_id = get_integer(params, "message_id")
        if message_id == 0:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return chat, message

    def _apply_edit(
        self,
        chat: ChatState,
        message: Message,
        fields: dict[str, Any],
        removed: tuple[str, ...],
        reply_markup: dict[str, Any] | None,
    ) -> Message:
        unchanged = all(message.get(key) == value for key, value in fields.items()) and all(
            key not in message for key in removed if key not in fields
        )
        if unchanged and message.get("reply_markup") == reply_markup:
            raise ApiError(400, NOT_MODIFIED_DESCRIPTION)
        for key in removed:
            message.pop(key, None)
        message.update(copy.deepcopy(fields))
        # An edit without reply_markup removes the inline keyboard, as in Telegram.
        message.pop("reply_markup", None)
        if reply_markup is not None:
            message["reply_markup"] = copy.deepcopy(reply_markup)
        message["edit_date"] = int(time.time())
        self._events.emit({"type": "edited_message", "chat_id": chat.chat_id, "message": message})
        return copy.deepcopy(message)

    def _edit_message_text(self, params: Params, uploads: dict[str, Upload]) -> Message:
        chat, message = self._editable(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = formatted_param(params, "text", "entities", what="text")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        fields = text_fields(text, entities, "text", "entities")
        return self._apply_edit(
            chat, message, fields, ("text", "entities"), get_inline_keyboard(params)
        )

    def _edit_message_caption(self, params: Params, uploads: dict[str, Upload]) -> Message:
        chat, message = self._editable(params)
        if "photo" not in message and "document" not in message:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        fields = self._caption_fields(params)
        return self._apply_edit(
            chat, message, fields, ("caption", "caption_entities"), get_inline_keyboard(params)
        )

    def _edit_message_reply_markup(self, params: Params, uploads: dict[str, Upload]) -> Message:
        chat, message = self._editable(params)
        return self._apply_edit(chat, message, {}, (), get_inline_keyboard(params))

    def _delete_message(self, params: Params, uploads: dict[str, Upload]) -> bool:
        chat = self._api_chat(params)
        message_id = get_integer(params, "message_id")
        message = chat.messages.get(message_id)
        if message is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        own = message["from"]["id"] == self.bot_id
        if not (own or chat.is_private or chat.bot_is_admin):
            raise ApiError(400, "Bad Request: message can't be deleted")
        del chat.messages[message_id]
        self._events.emit(
            {"type": "deleted_message", "chat_id": chat.chat_id, "message_id": message_id}
        )
        return True

    def _answer_callback_query(self, params: Params, uploads: dict[str, Upload]) -> bool:
        query_id = get_string(params, "callback_query_id") or ""
        if query_id not in self.callback_answers or self.callback_answers[query_id] is not None:
            raise ApiError(400, QUERY_INVALID_DESCRIPTION)
        answer: dict[str, Any] = {
            "text": get_string(params, "text"),
            "show_alert": get_bool(params, "show_alert"),
            "url": get_string(params, "url"),
            "cache_time": get_integer(params, "cache_time"),
        }
        if answer["text"] is not None and len(answer["text"]) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = answer
        self._events.emit(
            {"type": "callback_answer", "callback_query_id": query_id, "answer": answer}
        )
        return True

    def _get_chat(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        chat = self._api_chat(params)
        full = copy.deepcopy(chat.chat)
        full.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        return full

    def _member(self, chat: ChatState, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_id:
            user = self.bot_user
            is_admin = chat.bot_is_admin and not chat.is_private
        else:
            if user_id not in self._users:
                raise ApiError(400, "Bad Request: user not found")
            user = self._users[user_id]
            is_admin = user_id in chat.admin_user_ids
        if is_admin:
            return {
                "status": "administrator",
                "user": copy.deepcopy(user),
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": True,
                "can_restrict_members": True,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
                "can_pin_messages": True,
            }
        is_member = user_id == self.bot_id or user_id in chat.member_ids
        return {"status": "member" if is_member else "left", "user": copy.deepcopy(user)}

    def _get_chat_member(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        chat = self._api_chat(params)
        return self._member(chat, get_integer(params, "user_id"))

    def _get_chat_administrators(
        self, params: Params, uploads: dict[str, Upload]
    ) -> list[dict[str, Any]]:
        chat = self._api_chat(params)
        if chat.is_private:
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        ids = sorted(user_id for user_id in chat.admin_user_ids if user_id in self._users)
        if chat.bot_is_admin:
            ids.append(self.bot_id)
        return [self._member(chat, user_id) for user_id in ids]
