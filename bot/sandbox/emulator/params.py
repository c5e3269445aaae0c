"""Reading Bot API request parameters the way Telegram accepts them.

A client may send parameters in the query string, as a JSON body, form-urlencoded or multipart
(with uploaded files). PTB sends every value as a string, with objects and lists JSON-encoded, so
each reader below accepts both the typed JSON value and its string form.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.emulator.errors import ApiError

Params = dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """One file uploaded in a multipart request."""

    field: str
    file_name: str
    content_type: str
    data: bytes


async def read_request(request: web.Request) -> tuple[Params, dict[str, Upload]]:
    """All parameters of a request (query string, then body) and its uploaded files by field."""
    params: Params = dict(request.query)
    uploads: dict[str, Upload] = {}
    if not request.body_exists:
        return params, uploads
    content_type = request.content_type
    if content_type == "application/json":
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON encoded request") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: JSON encoded request must be an object")
            params.update(body)
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                uploads[key] = Upload(
                    field=key,
                    file_name=value.filename or key,
                    content_type=value.content_type or "application/octet-stream",
                    data=value.file.read(),
                )
            elif isinstance(value, bytes | bytearray):
                params[key] = bytes(value).decode("utf-8", errors="replace")
            else:
                params[key] = value
    return params, uploads


def get_string(params: Params, name: str) -> str | None:
    """A string parameter; numbers are accepted and turned into their text."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def get_integer(params: Params, name: str, default: int = 0) -> int:
    """An integer parameter; like Telegram, text that is not a number reads as 0."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def get_bool(params: Params, name: str) -> bool:
    """A boolean parameter: true, "true", "True" and "1" are true; anything else false."""
    value = params.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return False


def get_json(params: Params, name: str, what: str) -> Any:
    """A JSON-serialized parameter (object or list) or None; `what` names it in the error."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {what} JSON object") from None
    return value


def get_chat_id(params: Params, name: str = "chat_id") -> int | str:
    """A chat id: an integer, or an "@username" string; missing is an error as in Telegram."""
    value = params.get(name)
    if value is None or value == "":
        raise ApiError(400, f"Bad Request: {name} is empty")
    if isinstance(value, bool):
        raise ApiError(400, "Bad Request: chat not found")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.startswith("@"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "Bad Request: chat not found") from None


INLINE_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "web_app",
    "login_url",
    "callback_game",
    "pay",
)
MAX_CALLBACK_DATA_BYTES = 64


def get_inline_keyboard(params: Params) -> dict[str, Any] | None:
    """The inline keyboard to attach to a message (other keyboards are not part of it)."""
    markup = get_json(params, "reply_markup", "reply keyboard markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ApiError(
            400,
            'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an '
            "Array of Arrays",
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise ApiError(400, "Bad Request: can't parse inline keyboard button")
            actions = [name for name in INLINE_BUTTON_ACTIONS if name in button]
            if not actions:
                raise ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            if "callback_data" in button:
                data = str(button["callback_data"]).encode("utf-8")
                if not 1 <= len(data) <= MAX_CALLBACK_DATA_BYTES:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    if not any(rows):
        return None
    return markup


_INTEGER_PARAMS = frozenset(
    {
        "message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "reply_to_message_id",
        "cache_time",
        "message_thread_id",
        "from_chat_id",
        "max_connections",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "show_alert",
        "drop_pending_updates",
        "has_spoiler",
        "show_caption_above_media",
        "disable_web_page_preview",
        "disable_content_type_detection",
        "allow_paid_broadcast",
    }
)
_JSON_PARAMS = frozenset(
    {
        "reply_parameters",
        "reply_markup",
        "allowed_updates",
        "media",
        "commands",
        "scope",
        "entities",
        "caption_entities",
        "link_preview_options",
    }
)


def normalize(params: Params, uploads: dict[str, Upload]) -> Params:
    """A typed copy of `params` for `BotApiEmulator.calls`: ints, bools and JSON decoded.

    Best effort: a value that does not decode stays as sent. Uploads appear under their field
    as {"file_name", "content_type", "size"}.
    """
    typed: Params = {}
    for name, value in params.items():
        typed[name] = value
        if not isinstance(value, str):
            continue
        if name in _INTEGER_PARAMS or name == "chat_id":
            with contextlib.suppress(ValueError):
                typed[name] = int(value)
        elif name in _BOOL_PARAMS:
            typed[name] = value.strip().lower() in ("true", "1")
        elif name in _JSON_PARAMS:
            with contextlib.suppress(ValueError):
                typed[name] = json.loads(value)
    for name, upload in uploads.items():
        typed[name] = {
            "file_name": upload.file_name,
            "content_type": upload.content_type,
            "size": len(upload.data),
        }
    return typed
