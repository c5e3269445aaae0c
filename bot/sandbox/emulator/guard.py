"""What keeps other web sites out of the sandbox: an aiohttp middleware for every route.

A page open in the same browser can reach 127.0.0.1 too. It could post a form to the Bot API half,
load an uploaded file from this origin, or rebind a DNS name of its own to 127.0.0.1 and read
everything. So every request must name this server in `Host` (an IP address, `localhost` or the
configured host name: a rebound name is refused), a browser's `Origin`, when sent, must be this
origin, and every response carries a strict Content-Security-Policy (scripts, styles, images and
connections from this origin only; no frames, no forms, no plug-ins) and `nosniff`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def host_allowed(host: str, names: Iterable[str] = ()) -> bool:
    """An IP address, `localhost`, or one of `names` (with any port)."""
    try:
        hostname = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    if not hostname:
        return False
    if hostname == "localhost" or hostname in {name.lower() for name in names}:
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def same_origin(origin: str | None, host: str) -> bool:
    """No Origin (not a browser, or a plain navigation), or exactly http(s)://<Host>."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def install_guard(app: web.Application, names: Iterable[str] = ()) -> None:
    """Refuse a foreign Host or Origin on every route of `app` (403); add SECURITY_HEADERS to
    every response, streamed ones and errors included (on_response_prepare: just before the
    headers go out)."""
    app.middlewares.append(guard_middleware(names))
    app.on_response_prepare.append(_add_headers)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def guard_middleware(names: Iterable[str] = ()) -> Middleware:
    """The middleware: refuse a foreign Host or Origin with 403."""
    allowed = tuple(names)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if not host_allowed(host, allowed):
            return web.json_response(
                {"ok": False, "error": f"this sandbox does not answer for the host {host!r}"},
                status=403,
            )
        if not same_origin(request.headers.get("Origin"), host):
            return web.json_response(
                {"ok": False, "error": "requests from other web sites are refused"}, status=403
            )
        return await handler(request)

    return guard
