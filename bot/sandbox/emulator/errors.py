"""The emulator's error type: one Bot API error reply (status, description, parameters)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(ValueError):
    """A Bot API error reply, e.g. `ApiError(400, "Bad Request: chat not found")`."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        """The reply body exactly as Telegram shapes it."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def error_response(error: ApiError) -> web.Response:
    """The HTTP response carrying `error`, with its error code as the status."""
    return web.json_response(error.to_json(), status=error.error_code)
