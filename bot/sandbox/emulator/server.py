"""A local Telegram Bot API emulator: the bot side over HTTP, the user side as in-process calls.

The bot (PTB with `base_url=f"{url}/bot"`, `base_file_url=f"{url}/file/bot"`) talks to it exactly
as to api.telegram.org: long polling or a webhook the emulator posts updates to, uploads, file
downloads, Telegram's JSON shapes and error replies. Tests and the sandbox page act as users
(`send_text`, `send_photo`, `press_button`, ...) and wait for the bot's answers (`wait_for_reply`,
`wait_for`). Everything lives on one event loop; the user-side methods are plain functions to call
from that loop's thread.

The concerns live in their own modules: the state both sides share (chats.py), the user side
(users.py), the Bot API methods (bot_side.py), files (uploads.py), the update queue and long
polling (updates.py), webhook delivery (webhooks.py), events and waiting (events.py) and fault
injection (faults.py). This module puts them together behind one class, with its lifecycle and
its HTTP routes.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from bot.sandbox.emulator.bot_side import BotSide
from bot.sandbox.emulator.chats import Message
from bot.sandbox.emulator.errors import ApiError, error_response
from bot.sandbox.emulator.events import EventHub
from bot.sandbox.emulator.faults import FaultPlan, fault_response
from bot.sandbox.emulator.params import normalize, read_request
from bot.sandbox.emulator.store import FileStore
from bot.sandbox.emulator.updates import UpdateQueue
from bot.sandbox.emulator.uploads import MAX_UPLOAD_BYTES
from bot.sandbox.emulator.users import UserSide
from bot.sandbox.emulator.webhooks import DeliveryOptions, DeliveryStats

# A well-formed token that is not ours gets 401; a malformed one 404, as on api.telegram.org.
TOKEN_PATTERN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,100}$")
DOWNLOAD_METHOD = "download"  # the name file downloads get in `calls` and `inject_faults`


class BotApiEmulator(UserSide, BotSide):
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
        deliver_webhooks: bool = True,
        webhook_timeout: float = 10.0,
        webhook_retry_seconds: float = 0.5,
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
        self._users = {}
        self._chats = {}
        self._files = FileStore(max_file_bytes)
        self._updates = UpdateQueue(max_pending_updates)
        self._faults = FaultPlan()
        self._commands = {}
        self.callback_answers = {}
        self.webhook = None
        self.deliver_webhooks = deliver_webhooks
        self.webhook_delivery_options = DeliveryOptions(
            webhook_timeout, webhook_retry_seconds, max(8.0, webhook_retry_seconds)
        )
        self._delivery = None
        self._events = EventHub()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self._methods = self.method_table()
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
        self._updates.wake_long_poll("stop")
        await self._stop_delivery()
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

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        token_error = self._check_token(request.match_info["token"])
        if token_error is not None:
            return error_response(token_error)
        sent_name = request.match_info["method"]
        known = self._methods.get(sent_name.lower())  # method names are case-insensitive
        name = known[0] if known else sent_name
        try:
            params, uploads = await read_request(request)
        except ApiError as error:
            return error_response(error)
        self._record_call(name, normalize(params, uploads))
        fault = self._faults.take(name)
        if fault is not None:
            return await fault_response(request, fault, self._stopping)
        if known is None:
            return error_response(ApiError(404, "Not Found"))
        try:
            result = known[1](params, uploads)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as error:
            return error_response(error)
        return web.json_response({"ok": True, "result": result})

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        token_error = self._check_token(request.match_info["token"])
        if token_error is not None:
            return error_response(token_error)
        file_path = request.match_info["file_path"]
        self._record_call(DOWNLOAD_METHOD, {"file_path": file_path})
        fault = self._faults.take(DOWNLOAD_METHOD)
        if fault is not None:
            return await fault_response(request, fault, self._stopping)
        stored = self._files.by_path(file_path)
        if stored is None:
            return error_response(ApiError(404, "Not Found"))
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
        self._faults.inject(
            count, kind, retry_after=retry_after, hold_seconds=hold_seconds, methods=methods
        )

    def clear_faults(self) -> None:
        """Forget the faults not yet used."""
        self._faults.clear()

    # --- updates and events ------------------------------------------------------------------

    @property
    def webhook_stats(self) -> DeliveryStats | None:
        """What the webhook delivery did so far (None: no webhook is delivered to)."""
        return self._delivery.stats if self._delivery is not None else None

    @property
    def last_update_id(self) -> int:
        """The update_id of the latest update made for the bot (0 before the first)."""
        return self._updates.last_update_id

    def pending_updates(self) -> list[dict[str, Any]]:
        """The updates queued for the bot and not yet confirmed (copies)."""
        return self._updates.pending()

    def subscribe(self, max_events: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        """A queue of events: {"type": "new_message" | "edited_message", "chat_id", "message"},
        {"type": "deleted_message", "chat_id", "message_id"}, {"type": "chat_action", "chat_id",
        "action"}, {"type": "callback_answer", "callback_query_id", "answer"} and
        {"type": "new_chat", "chat"}. A full queue drops its oldest event."""
        return self._events.subscribe(max_events)

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending events to `queue`."""
        self._events.unsubscribe(queue)

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

        return await self._events.wait_until(check, timeout, explain)

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

        return await self._events.wait_until(check, timeout, explain)

    async def wait_for_callback_answer(
        self, callback_query_id: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The bot's answerCallbackQuery parameters for a pressed button."""
        if callback_query_id not in self.callback_answers:
            raise ValueError(f"unknown callback query {callback_query_id!r}")
        return await self._events.wait_until(
            lambda: copy.deepcopy(self.callback_answers.get(callback_query_id)),
            timeout,
            lambda: f"the bot did not answer callback query {callback_query_id} in {timeout} s",
        )


def _summary(message: Message) -> str:
    """A short description of a message for timeout errors."""
    if "text" in message:
        return f"#{message['message_id']}: {message['text'][:80]!r}"
    kinds = [key for key in ("photo", "document") if key in message]
    return f"#{message['message_id']}: {'/'.join(kinds) or 'other'} {message.get('caption', '')!r}"
