"""A local Telegram Bot API emulator: the bot side over HTTP, the user side as in-process calls.

The bot (PTB with `base_url=f"{url}/bot"`, `base_file_url=f"{url}/file/bot"`) talks to it exactly
as to api.telegram.org: long polling, uploads, file downloads, Telegram's JSON shapes and error
replies. Tests and the sandbox page act as users (`send_text`, `send_photo`, `press_button`, ...)
and wait for the bot's answers (`wait_for_reply`, `wait_for`). Everything lives on one event loop;
the user-side methods are plain functions to call from that loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import inspect
import json
import mimetypes
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.formatting import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    detect_entities,
    entity_text,
    formatted_param,
    text_fields,
    trim_text,
)
from bot.sandbox.emulator.media import photo_renditions, thumbnail
from bot.sandbox.emulator.params import (
    Params,
    Upload,
    get_bool,
    get_chat_id,
    get_inline_keyboard,
    get_integer,
    get_json,
    get_string,
    normalize,
    read_request,
)
from bot.sandbox.emulator.store import ChatState, FileStore, StoredFile

Message = dict[str, Any]
Handler = Callable[[Params, dict[str, Upload]], Any]
Result = TypeVar("Result")

# A well-formed token that is not ours gets 401; a malformed one 404, as on api.telegram.org.
# Who an anonymous group admin's messages come from: one user shared by all of them.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
TOKEN_PATTERN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,100}$")
CONFLICT_DESCRIPTION = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
NOT_MODIFIED_DESCRIPTION = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID_DESCRIPTION = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
WRONG_FILE_DESCRIPTION = "Bad Request: wrong file identifier/HTTP URL specified"
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# What Telegram delivers when allowed_updates was never given or given as [].
DEFAULT_UPDATE_TYPES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
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
FAULT_KINDS = ("500", "timeout", "drop", "429")
COMMAND_PATTERN = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files
MAX_PHOTO_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
LONG_POLL_MAX_TIMEOUT = 50
DOWNLOAD_METHOD = "download"  # the name file downloads get in `calls` and `inject_faults`


@dataclass(frozen=True)
class _Fault:
    kind: str
    retry_after: int
    hold_seconds: float
    methods: frozenset[str] | None  # lower-case method names, None for any


class BotApiEmulator:
    """An in-process Telegram Bot API server for one bot token; see the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "digitbot_test_bot",
        *,
        bot_first_name: str = "DigitBot",
        can_join_groups: bool = True,
        can_read_all_group_messages: bool = False,
        supports_inline_queries: bool = False,
        max_messages_per_chat: int = 1000,
        max_file_bytes: int = 256 * 1024 * 1024,
        max_pending_updates: int = 1000,
        max_calls: int = 10_000,
    ) -> None:
        if not TOKEN_PATTERN.match(token):
            raise ValueError(f"token must look like '123456:ABC-def', got {token!r}")
        for name, value in (
            ("max_messages_per_chat", max_messages_per_chat),
            ("max_pending_updates", max_pending_updates),
            ("max_calls", max_calls),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(token.split(":", 1)[0])
        self.can_read_all_group_messages = can_read_all_group_messages
        self.max_messages_per_chat = max_messages_per_chat
        self.max_pending_updates = max_pending_updates
        self.max_calls = max_calls
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self._me: dict[str, Any] = {
            **self.bot_user,
            "can_join_groups": can_join_groups,
            "can_read_all_group_messages": can_read_all_group_messages,
            "supports_inline_queries": supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int, ChatState] = {}
        self._files = FileStore(max_file_bytes)
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 1
        self._allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self._long_poll: asyncio.Future[str] | None = None
        self._faults: list[_Fault] = []
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        # callback_query_id -> the bot's answer (None until answered); oldest dropped.
        self.callback_answers: dict[str, dict[str, Any] | None] = {}
        # setWebhook's url and secret_token (None: no webhook).
        self.webhook: dict[str, Any] | None = None
        self._subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self._waiters: set[asyncio.Future[None]] = set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self._methods: dict[str, tuple[str, Handler]] = {
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
        # Exposed so the sandbox page can add its own routes before start().
        self.app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        self.app.router.add_route("GET", "/file/bot{token}/{file_path:.+}", self._handle_download)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL, e.g. http://127.0.0.1:8081."""
        if self._runner is not None:
            raise ValueError(f"emulator already started at {self.url}")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown_host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        """Answer waiting requests, close every connection and stop serving."""
        if self._runner is None:
            return
        self._stopping.set()
        self._wake_long_poll("stop")
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- HTTP --------------------------------------------------------------------------------

    def _check_token(self, token: str) -> ApiError | None:
        if not TOKEN_PATTERN.match(token):
            return ApiError(404, "Not Found")
        if token != self.token:
            return ApiError(401, "Unauthorized")
        return None

    @staticmethod
    def _error_response(error: ApiError) -> web.Response:
        return web.json_response(error.to_json(), status=error.error_code)

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        token_error = self._check_token(request.match_info["token"])
        if token_error is not None:
            return self._error_response(token_error)
        sent_name = request.match_info["method"]
        known = self._methods.get(sent_name.lower())  # method names are case-insensitive
        name = known[0] if known else sent_name
        try:
            params, uploads = await read_request(request)
        except ApiError as error:
            return self._error_response(error)
        self._record_call(name, normalize(params, uploads))
        fault = self._take_fault(name)
        if fault is not None:
            return await self._fault_response(request, fault)
        if known is None:
            return self._error_response(ApiError(404, "Not Found"))
        try:
            result = known[1](params, uploads)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as error:
            return self._error_response(error)
        return web.json_response({"ok": True, "result": result})

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        token_error = self._check_token(request.match_info["token"])
        if token_error is not None:
            return self._error_response(token_error)
        file_path = request.match_info["file_path"]
        self._record_call(DOWNLOAD_METHOD, {"file_path": file_path})
        fault = self._take_fault(DOWNLOAD_METHOD)
        if fault is not None:
            return await self._fault_response(request, fault)
        stored = self._files.by_path(file_path)
        if stored is None:
            return self._error_response(ApiError(404, "Not Found"))
        # The bot downloads this; a browser must never render it (an uploaded HTML file).
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type,
            headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
        )

    def _record_call(self, name: str, params: dict[str, Any]) -> None:
        self.calls.append((name, params))
        if len(self.calls) > self.max_calls:
            del self.calls[: len(self.calls) - self.max_calls]

    # --- fault injection ---------------------------------------------------------------------

    def inject_faults(
        self,
        count: int,
        kind: str,
        *,
        retry_after: int = 1,
        hold_seconds: float = 10.0,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Make the next `count` bot-side requests fail as `kind`.

        "500": Internal Server Error. "timeout": hold the request `hold_seconds` (longer than the
        client's timeout), then answer 502 Bad Gateway. "drop": close the connection without a
        response. "429": Too Many Requests with `parameters.retry_after`. `methods` limits the
        faults to those Bot API methods (e.g. {"sendMessage"}; "download" for file downloads),
        so a polling loop does not use them up.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        if retry_after < 1:
            raise ValueError(f"retry_after must be at least 1 second, got {retry_after}")
        if hold_seconds < 0:
            raise ValueError(f"hold_seconds must not be negative, got {hold_seconds}")
        names = None if methods is None else frozenset(name.lower() for name in methods)
        fault = _Fault(kind=kind, retry_after=retry_after, hold_seconds=hold_seconds, methods=names)
        self._faults.extend([fault] * count)

    def clear_faults(self) -> None:
        """Forget the faults not yet used."""
        self._faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.methods is None or method.lower() in fault.methods:
                return self._faults.pop(index)
        return None

    async def _fault_response(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.kind == "500":
            return self._error_response(ApiError(500, "Internal Server Error"))
        if fault.kind == "429":
            return self._error_response(
                ApiError(
                    429,
                    f"Too Many Requests: retry after {fault.retry_after}",
                    {"retry_after": fault.retry_after},
                )
            )
        if fault.kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.hold_seconds)
            return self._error_response(ApiError(502, "Bad Gateway"))
        # "drop": abort the connection; aiohttp then writes nothing for this response.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    # --- updates and long polling ------------------------------------------------------------

    def _push_update(self, kind: str, payload: dict[str, Any]) -> None:
        # Like Telegram, types the bot did not allow are never queued.
        if kind not in self._allowed_updates:
            return
        self._updates.append({"update_id": self._next_update_id, kind: copy.deepcopy(payload)})
        self._next_update_id += 1
        while len(self._updates) > self.max_pending_updates:
            self._updates.popleft()
        self._wake_long_poll("update")

    def _wake_long_poll(self, reason: str) -> None:
        if self._long_poll is not None and not self._long_poll.done():
            self._long_poll.set_result(reason)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            # A negative offset keeps only the last -offset updates; the rest are forgotten.
            while len(self._updates) > -offset:
                self._updates.popleft()

    def _pending(self, offset: int, limit: int) -> list[dict[str, Any]]:
        ready = [update for update in self._updates if update["update_id"] >= offset]
        return copy.deepcopy(ready[:limit])

    def _set_allowed_updates(self, allowed: Any) -> None:
        if allowed is None:
            return  # not given: keep the previous setting, as Telegram does
        if not isinstance(allowed, list):
            raise ApiError(400, "Bad Request: can't parse allowed updates JSON object")
        chosen = frozenset(str(name).lower() for name in allowed) & frozenset(UPDATE_TYPES)
        self._allowed_updates = chosen or DEFAULT_UPDATE_TYPES

    async def _get_updates(self, params: Params, uploads: dict[str, Upload]) -> Any:
        offset = get_integer(params, "offset")
        limit = min(max(get_integer(params, "limit", 100), 1), 100)
        timeout = min(max(get_integer(params, "timeout"), 0), LONG_POLL_MAX_TIMEOUT)
        self._set_allowed_updates(get_json(params, "allowed_updates", "allowed updates"))
        self._confirm(offset)
        ready = self._pending(offset, limit)
        if ready or timeout == 0 or self._stopping.is_set():
            return ready
        # One long poll at a time: a newer one terminates the waiting one (409), as Telegram does.
        self._wake_long_poll("conflict")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiter: asyncio.Future[str] = loop.create_future()
        self._long_poll = waiter
        try:
            while True:
                try:
                    reason = await asyncio.wait_for(waiter, max(deadline - loop.time(), 0))
                except TimeoutError:
                    return self._pending(offset, limit)
                if reason == "conflict":
                    raise ApiError(409, CONFLICT_DESCRIPTION)
                ready = self._pending(offset, limit)
                if ready or reason == "stop":
                    return ready
                waiter = loop.create_future()
                self._long_poll = waiter
        finally:
            if self._long_poll is waiter:
                self._long_poll = None

    def pending_updates(self) -> list[dict[str, Any]]:
        """The updates queued for the bot and not yet confirmed (copies)."""
        return copy.deepcopy(list(self._updates))

    # --- events for the sandbox page and waiting tests -----------------------------------------

    def subscribe(self, max_events: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        """A queue of events: {"type": "new_message" | "edited_message", "chat_id", "message"},
        {"type": "deleted_message", "chat_id", "message_id"}, {"type": "chat_action", "chat_id",
        "action"}, {"type": "callback_answer", "callback_query_id", "answer"} and
        {"type": "new_chat", "chat"}. A full queue drops its oldest event."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_events)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending events to `queue`."""
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def _emit(self, event: dict[str, Any]) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(copy.deepcopy(event))
        # Every change may be what a waiting test looks for.
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_until(
        self, check: Callable[[], Result | None], timeout: float, explain: Callable[[], str]
    ) -> Result:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(explain())
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                self._waiters.discard(waiter)

    def _bot_messages(self, chat_id: int | None = None) -> list[Message]:
        chats = [self._chat(chat_id)] if chat_id is not None else list(self._chats.values())
        return [
            copy.deepcopy(message)
            for chat in chats
            for message in chat.messages.values()
            if message["from"]["id"] == self.bot_id
        ]

    async def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0
    ) -> list[Message]:
        """All bot messages (current state, by chat then id) matching `predicate`, once there is
        at least one; raises TimeoutError after `timeout` seconds."""

        def check() -> list[Message] | None:
            return [message for message in self._bot_messages() if predicate(message)] or None

        def explain() -> str:
            texts = [_summary(message) for message in self._bot_messages()[-10:]]
            return f"no bot message matched within {timeout} s; last bot messages: {texts}"

        return await self._wait_until(check, timeout, explain)

    async def wait_for_reply(self, chat_id: int, message_id: int, timeout: float = 10.0) -> Message:
        """The first bot message in the chat that replies to `message_id` (current state)."""
        self._chat(chat_id)

        def check() -> Message | None:
            for message in self._bot_messages(chat_id):
                if message.get("reply_to_message", {}).get("message_id") == message_id:
                    return message
            return None

        def explain() -> str:
            texts = [_summary(message) for message in self._bot_messages(chat_id)[-10:]]
            return (
                f"the bot did not reply to message {message_id} in chat {chat_id} within "
                f"{timeout} s; its last messages there: {texts}"
            )

        return await self._wait_until(check, timeout, explain)

    async def wait_for_callback_answer(
        self, callback_query_id: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The bot's answerCallbackQuery parameters for a pressed button."""
        if callback_query_id not in self.callback_answers:
            raise ValueError(f"unknown callback query {callback_query_id!r}")
        return await self._wait_until(
            lambda: copy.deepcopy(self.callback_answers.get(callback_query_id)),
            timeout,
            lambda: f"the bot did not answer callback query {callback_query_id} in {timeout} s",
        )

    # --- state helpers -----------------------------------------------------------------------

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
            for chat in self._chats.values():
                if str(chat.chat.get("username", "")).lower() == wanted:
                    return chat
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
        self._emit({"type": "new_message", "chat_id": chat.chat_id, "message": message})
        return message

    # --- user side ---------------------------------------------------------------------------

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
            self._emit({"type": "new_chat", "chat": private})
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
        self._emit({"type": "new_chat", "chat": chat})
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

    def _deliver(self, chat: ChatState, message: Message, kind: str) -> None:
        if self._bot_receives(chat, message):
            self._push_update(kind, message)

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
        message = self._store_message(chat, user, content, reply_to=reply_to)
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

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
        content = {"photo": self._store_photo(image), **self._user_caption(caption)}
        message = self._store_message(chat, user, content, reply_to=reply_to)
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

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
        document = self._store_document(data, file_name, mime_type)
        content = {"document": document, **self._user_caption(caption)}
        message = self._store_message(chat, user, content, reply_to=reply_to)
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

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
        self._emit({"type": "edited_message", "chat_id": chat_id, "message": message})
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
        self._push_update("callback_query", callback_query)
        return copy.deepcopy(callback_query)

    # --- files -------------------------------------------------------------------------------

    def _store_photo(self, image: bytes) -> list[dict[str, Any]]:
        photo_set = secrets.token_hex(8)
        sizes: list[dict[str, Any]] = []
        for rendition in photo_renditions(image):
            stored = self._files.add(
                rendition.data,
                kind="photo",
                mime_type="image/jpeg",
                extension="jpg",
                width=rendition.width,
                height=rendition.height,
                photo_set=photo_set,
            )
            sizes.append(stored.photo_size())
        return sizes

    def _store_document(self, data: bytes, file_name: str, mime_type: str | None) -> dict[str, Any]:
        if not data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        guessed = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        extension = file_name.rsplit(".", 1)[1] if "." in file_name else "bin"
        stored = self._files.add(
            data,
            kind="document",
            mime_type=guessed,
            extension=re.sub(r"[^A-Za-z0-9]", "", extension)[:8] or "bin",
            file_name=file_name,
        )
        document: dict[str, Any] = {
            "file_name": file_name,
            "mime_type": guessed,
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }
        preview = thumbnail(data) if guessed.startswith("image/") else None
        if preview is not None:
            thumb = self._files.add(
                preview.data,
                kind="thumbnail",
                mime_type="image/jpeg",
                extension="jpg",
                width=preview.width,
                height=preview.height,
            )
            document["thumbnail"] = thumb.photo_size()
            document["thumb"] = thumb.photo_size()  # Telegram still sends the old name too
        return document

    def _existing_file(self, file_id: str, kind: str) -> StoredFile:
        if file_id.startswith(("http://", "https://")):
            # The emulator cannot fetch URLs (no network), so it answers like an unreachable URL.
            raise ApiError(400, WRONG_FILE_DESCRIPTION)
        stored = self._files.get(file_id.strip())
        if stored is None:
            raise ApiError(400, WRONG_FILE_DESCRIPTION)
        if stored.kind != kind and not (kind == "photo" and stored.kind == "thumbnail"):
            raise ApiError(400, "Bad Request: type of file mismatch")
        return stored

    @staticmethod
    def _input_file(
        value: Any, uploads: dict[str, Upload], field: str | None = None
    ) -> Upload | str | None:
        """An InputFile parameter: the uploaded file, a file_id/URL string, or None."""
        if field is not None and field in uploads:
            return uploads[field]
        if isinstance(value, str) and value.startswith("attach://"):
            return uploads.get(value.removeprefix("attach://"))
        if isinstance(value, str) and value.strip():
            return value
        return None

    def _photo_content(self, source: Upload | str | None) -> list[dict[str, Any]]:
        if source is None:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if isinstance(source, Upload):
            if len(source.data) > MAX_PHOTO_UPLOAD_BYTES:
                raise ApiError(400, "Bad Request: file is too big")
            return self._store_photo(source.data)
        stored = self._existing_file(source, "photo")
        if stored.photo_set is None:
            return [stored.photo_size()]
        return [size.photo_size() for size in self._files.photo_set(stored.photo_set)]

    def _document_content(self, source: Upload | str | None) -> dict[str, Any]:
        if source is None:
            raise ApiError(400, "Bad Request: there is no document in the request")
        if isinstance(source, Upload):
            if len(source.data) > MAX_UPLOAD_BYTES:
                raise ApiError(413, "Request Entity Too Large")
            mime = source.content_type
            if mime == "application/octet-stream":
                mime = mimetypes.guess_type(source.file_name)[0] or mime
            return self._store_document(source.data, source.file_name, mime)
        stored = self._existing_file(source, "document")
        return {
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }

    # --- bot side: shared pieces -------------------------------------------------------------

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

    # --- bot side: methods -------------------------------------------------------------------

    def _return_true(self, params: Params, uploads: dict[str, Upload]) -> bool:
        return True

    def _get_me(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        return copy.deepcopy(self._me)

    def _set_webhook(self, params: Params, uploads: dict[str, Upload]) -> bool:
        """Record the webhook (tests post updates to it themselves; nothing is delivered)."""
        url = get_string(params, "url") or ""
        secret = get_string(params, "secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret} if url else None
        return True

    def _delete_webhook(self, params: Params, uploads: dict[str, Upload]) -> bool:
        self.webhook = None
        if get_bool(params, "drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: Params, uploads: dict[str, Upload]) -> dict[str, Any]:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

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
        chat = self._api_chat(params)
        caption = self._caption_fields(params)
        reply_to = self._reply_target(chat, params)
        reply_markup = get_inline_keyboard(params)
        source = self._input_file(params.get("photo"), uploads, "photo")
        content = {"photo": self._photo_content(source), **caption}
        if get_bool(params, "has_spoiler"):
            content["has_media_spoiler"] = True
        return self._bot_send(chat, content, reply_to, reply_markup)

    def _send_document(self, params: Params, uploads: dict[str, Upload]) -> Message:
        chat = self._api_chat(params)
        caption = self._caption_fields(params)
        reply_to = self._reply_target(chat, params)
        reply_markup = get_inline_keyboard(params)
        source = self._input_file(params.get("document"), uploads, "document")
        content = {"document": self._document_content(source), **caption}
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
            source = self._input_file(item.get("media"), uploads)
            if kind == "photo":
                content: dict[str, Any] = {"photo": self._photo_content(source)}
            elif kind == "document":
                content = {"document": self._document_content(source)}
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
        self._emit({"type": "chat_action", "chat_id": chat.chat_id, "action": action})
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
        self._emit({"type": "edited_message", "chat_id": chat.chat_id, "message": message})
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
        self._emit({"type": "deleted_message", "chat_id": chat.chat_id, "message_id": message_id})
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
        self._emit({"type": "callback_answer", "callback_query_id": query_id, "answer": answer})
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


def _summary(message: Message) -> str:
    """A short description of a message for timeout errors."""
    if "text" in message:
        return f"#{message['message_id']}: {message['text'][:80]!r}"
    kinds = [key for key in ("photo", "document") if key in message]
    return f"#{message['message_id']}: {'/'.join(kinds) or 'other'} {message.get('caption', '')!r}"
