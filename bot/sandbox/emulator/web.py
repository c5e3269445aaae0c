"""The sandbox web page: a Telegram-like chat in the browser, served by the emulator's aiohttp app.

`add_page(emulator, ...)` adds, before `emulator.start()`:
- `GET /` the page, `GET /sandbox/static/...` its script and style (local files, no CDN);
- `GET /sandbox/file/{file_id}` a stored image (photos, thumbnails, image documents);
- JSON endpoints under `/sandbox/api/` that act as the simulated people (send text, photos and
  files, press buttons), switch who "I" am and who is a bot admin, change a group's settings;
- `GET /sandbox/api/events`, Server-Sent Events built from `emulator.subscribe()` plus the page's
  own changes, so every open tab updates live.

The page renders what the emulator stored: Telegram's plain text plus entities (the emulator has
already parsed the bot's HTML), turned into DOM nodes on the client, so nothing is ever inserted
as HTML. POST endpoints want an `X-Sandbox: 1` header: a custom header forces a CORS preflight, so
other web sites open in the same browser cannot post to the sandbox;
bot/sandbox/emulator/guard.py checks Host and Origin on every route and sends a strict
Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.guard import install_guard
from bot.sandbox.emulator.params import (
    Params,
    Upload,
    get_bool,
    get_integer,
    get_string,
    read_request,
)
from bot.sandbox.emulator.server import BotApiEmulator
from bot.sandbox.emulator.uploads import MAX_PHOTO_UPLOAD_BYTES, MAX_UPLOAD_BYTES

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/sandbox/api"
GUARD_HEADER = "X-Sandbox"
DEFAULT_MESSAGES_PER_CHAT = 200  # what the state endpoint returns per chat unless asked otherwise
MAX_STREAMS = 32  # open event streams (browser tabs) at once
STREAM_QUEUE_EVENTS = 500
KEEPALIVE_SECONDS = 10.0  # also how soon a closed tab's stream is noticed and freed
# Only these image types are served inline; anything else is a download (no HTML from uploads).
IMAGE_MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
_CLOSE = {"type": "_close"}  # tells an event stream to end (server shutdown)


@dataclass
class Page:
    """What the page adds to the emulator: who "I" am, who is a bot admin, the open streams."""

    emulator: BotApiEmulator
    admin_user_ids: set[int]
    current_user_id: int | None
    on_admins_changed: Callable[[list[int]], None] | None = None
    streams: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)

    def publish(self, event: dict[str, Any]) -> None:
        """Send a page event to every open stream (a full queue drops its oldest event)."""
        for queue in self.streams:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)


def add_page(
    emulator: BotApiEmulator,
    *,
    admin_user_ids: Iterable[int] = (),
    current_user_id: int | None = None,
    on_admins_changed: Callable[[list[int]], None] | None = None,
    host_names: Iterable[str] = (),
) -> Page:
    """Add the page's routes to `emulator.app` (call before `emulator.start()`), and the guard
    (bot/sandbox/emulator/guard.py) to all of its routes; `host_names`: names besides IP
    addresses and `localhost` the page may be opened as."""
    page = Page(
        emulator=emulator,
        admin_user_ids=set(admin_user_ids),
        current_user_id=current_user_id,
        on_admins_changed=on_admins_changed,
    )
    app = emulator.app
    install_guard(app, host_names)
    app.router.add_get("/", _with_page(page, _index))
    app.router.add_static("/sandbox/static", STATIC_DIR, append_version=False)
    app.router.add_get("/sandbox/file/{file_id}", _with_page(page, _file))
    app.router.add_get(f"{API_PREFIX}/state", _with_page(page, _state))
    app.router.add_get(f"{API_PREFIX}/events", _with_page(page, _events))
    for name, handler in (
        ("send_text", _send_text),
        ("send_photo", _send_photo),
        ("press_button", _press_button),
        ("current_user", _set_current_user),
        ("admin", _set_admin),
        ("group", _configure_group),
    ):
        app.router.add_post(f"{API_PREFIX}/{name}", _with_page(page, handler, guarded=True))
    app.on_shutdown.append(lambda _app: _close_streams(page))
    return page


Handler = Callable[[Page, web.Request], Any]


def _with_page(
    page: Page, handler: Handler, *, guarded: bool = False
) -> Callable[[web.Request], Any]:
    """An aiohttp handler for `handler(page, request)`; ValueErrors become 400 JSON replies."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if guarded and request.headers.get(GUARD_HEADER) != "1":
            return _error(403, f"missing the {GUARD_HEADER}: 1 header")
        try:
            return await handler(page, request)
        except ValueError as error:  # ApiError is a ValueError too
            description = error.description if isinstance(error, ApiError) else str(error)
            return _error(400, description)

    return handle


def _error(status: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error": description}, status=status)


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})


# --- reading -------------------------------------------------------------------------------------


async def _index(page: Page, request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _user_view(page: Page, user: dict[str, Any]) -> dict[str, Any]:
    return {**user, "is_admin": user["id"] in page.admin_user_ids}


def _chat_view(page: Page, chat: dict[str, Any]) -> dict[str, Any]:
    view = dict(chat)
    if chat["type"] != "private":
        view.update(page.emulator.group_settings(chat["id"]))
    view["commands"] = page.emulator.bot_commands(chat["id"])
    return view


def state_json(page: Page, messages_per_chat: int = DEFAULT_MESSAGES_PER_CHAT) -> dict[str, Any]:
    """Everything the page shows: the bot, people, chats (with settings) and recent messages."""
    emulator = page.emulator
    chats = emulator.chats()
    return {
        "bot": emulator.bot_user,
        "users": [_user_view(page, user) for user in emulator.users()],
        "current_user_id": page.current_user_id,
        "chats": [_chat_view(page, chat) for chat in chats],
        "messages": {
            str(chat["id"]): emulator.messages(chat["id"])[-messages_per_chat:] for chat in chats
        },
    }


async def _state(page: Page, request: web.Request) -> web.StreamResponse:
    limit = get_integer(dict(request.query), "limit", DEFAULT_MESSAGES_PER_CHAT)
    if not 1 <= limit <= page.emulator.max_messages_per_chat:
        raise ValueError(f"limit must be 1 to {page.emulator.max_messages_per_chat}, got {limit}")
    return _ok(**state_json(page, limit))


def image_mime_type(data: bytes) -> str | None:
    """The MIME type of an image PIL recognises among IMAGE_MIME_TYPES, else None."""
    try:
        with Image.open(io.BytesIO(data), formats=tuple(IMAGE_MIME_TYPES)) as image:
            return IMAGE_MIME_TYPES.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


async def _file(page: Page, request: web.Request) -> web.StreamResponse:
    try:
        data = page.emulator.file_bytes(request.match_info["file_id"])
    except ValueError:
        return _error(404, "file not found (unknown, or dropped to stay within the file budget)")
    # Always an attachment (an <img> still shows it; opening it downloads); an image type only
    # for bytes Pillow reads as that image, never the uploader's claim (no HTML, no SVG).
    headers = {"Content-Disposition": "attachment", "Cache-Control": "private, max-age=3600"}
    mime_type = image_mime_type(data) or "application/octet-stream"
    return web.Response(body=data, content_type=mime_type, headers=headers)


async def _events(page: Page, request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: every emulator change and page change, as JSON, until disconnect."""
    if len(page.streams) >= MAX_STREAMS:
        return _error(503, f"too many open pages (at most {MAX_STREAMS}); close some tabs")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    # Subscribe before the headers go out: the page reloads the state when the stream opens,
    # so no change can fall between that state and the first event.
    queue = page.emulator.subscribe(max_events=STREAM_QUEUE_EVENTS)
    page.streams.add(queue)
    try:
        await response.prepare(request)
        # The browser reconnects after a second if the stream breaks; then the page reloads state.
        await response.write(b"retry: 1000\n\n")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event is _CLOSE:
                break
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
    except ConnectionError:
        pass  # the tab was closed
    finally:
        page.emulator.unsubscribe(queue)
        page.streams.discard(queue)
    return response


async def _close_streams(page: Page) -> None:
    for queue in page.streams:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(_CLOSE)


# --- acting as a person --------------------------------------------------------------------------


def _required_integer(params: Params, name: str) -> int:
    value = get_integer(params, name)
    if value == 0:
        raise ValueError(f"{name} is required")
    return value


def _optional_integer(params: Params, name: str) -> int | None:
    return get_integer(params, name) or None


def _sender(page: Page, params: Params) -> int:
    """The person who acts: `user_id` if given, else the page's current person."""
    user_id = _optional_integer(params, "user_id") or page.current_user_id
    if user_id is None:
        raise ValueError("no user_id given and no current person chosen")
    return user_id


async def _send_text(page: Page, request: web.Request) -> web.StreamResponse:
    params, _ = await read_request(request)
    message = page.emulator.send_text(
        _required_integer(params, "chat_id"),
        _sender(page, params),
        get_string(params, "text") or "",
        reply_to_message_id=_optional_integer(params, "reply_to_message_id"),
    )
    return _ok(message=message)


async def _send_photo(page: Page, request: web.Request) -> web.StreamResponse:
    """Multipart: `file`, `chat_id`, optional `caption`, `reply_to_message_id`, `as_document`."""
    params, uploads = await read_request(request)
    upload: Upload | None = uploads.get("file")
    if upload is None or not upload.data:
        raise ValueError("no file uploaded (multipart field 'file')")
    chat_id = _required_integer(params, "chat_id")
    user_id = _sender(page, params)
    caption = (get_string(params, "caption") or "").strip() or None
    reply_to = _optional_integer(params, "reply_to_message_id")
    if get_bool(params, "as_document"):
        if len(upload.data) > MAX_UPLOAD_BYTES:
            raise ValueError(f"a file may have at most {MAX_UPLOAD_BYTES // 2**20} MB")
        message = page.emulator.send_document(
            chat_id,
            user_id,
            upload.data,
            file_name=upload.file_name,
            mime_type=None
            if upload.content_type == "application/octet-stream"
            else upload.content_type,
            caption=caption,
            reply_to_message_id=reply_to,
        )
    else:
        if len(upload.data) > MAX_PHOTO_UPLOAD_BYTES:
            raise ValueError(
                f"a photo may have at most {MAX_PHOTO_UPLOAD_BYTES // 2**20} MB; "
                "send it as a file instead"
            )
        try:
            message = page.emulator.send_photo(
                chat_id, user_id, upload.data, caption=caption, reply_to_message_id=reply_to
            )
        except ApiError as error:
            if "IMAGE_PROCESS_FAILED" not in error.description:
                raise
            # What Telegram's app says, rather than the Bot API's code word.
            name = upload.file_name or "This file"
            raise ValueError(
                f"{name} is not an image, so it cannot be sent as a photo. Tick “send as a "
                "file” to send it as a document: the bot will say what it makes of it."
            ) from None
    return _ok(message=message)


async def _press_button(page: Page, request: web.Request) -> web.StreamResponse:
    params, _ = await read_request(request)
    callback_query = page.emulator.press_button(
        _required_integer(params, "chat_id"),
        _required_integer(params, "message_id"),
        _sender(page, params),
        get_string(params, "callback_data") or "",
    )
    return _ok(callback_query=callback_query)


def _known_user(page: Page, user_id: int) -> int:
    if all(user["id"] != user_id for user in page.emulator.users()):
        raise ValueError(f"unknown user {user_id}")
    return user_id


async def _set_current_user(page: Page, request: web.Request) -> web.StreamResponse:
    params, _ = await read_request(request)
    page.current_user_id = _known_user(page, _required_integer(params, "user_id"))
    page.publish({"type": "current_user", "user_id": page.current_user_id})
    return _ok(current_user_id=page.current_user_id)


async def _set_admin(page: Page, request: web.Request) -> web.StreamResponse:
    """Make a person a bot admin (ADMIN_USER_IDS of the running bot) or not."""
    params, _ = await read_request(request)
    user_id = _known_user(page, _required_integer(params, "user_id"))
    if get_bool(params, "is_admin"):
        page.admin_user_ids.add(user_id)
    else:
        page.admin_user_ids.discard(user_id)
    admins = sorted(page.admin_user_ids)
    if page.on_admins_changed is not None:
        page.on_admins_changed(admins)
    page.publish({"type": "admins", "admin_user_ids": admins})
    return _ok(admin_user_ids=admins)


async def _configure_group(page: Page, request: web.Request) -> web.StreamResponse:
    """Turn a group's privacy mode on/off and make the bot an admin there or not."""
    params, _ = await read_request(request)
    chat_id = _required_integer(params, "chat_id")
    changes: dict[str, Any] = {
        name: get_bool(params, name) for name in ("privacy", "bot_is_admin") if name in params
    }
    settings = page.emulator.configure_group(chat_id, **changes)
    page.publish({"type": "group", "chat_id": chat_id, **settings})
    return _ok(chat_id=chat_id, **settings)
