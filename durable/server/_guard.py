"""What every request passes before the routes: its Host, its token, its body's size, and
a path whose percent-encoded slashes stay inside one segment.

Plain ASGI middleware (no ``BaseHTTPMiddleware``): the body limit wraps ``receive`` so
a body is counted while it arrives, and every refusal is the API's ``{"code",
"message"}`` shape.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import parse_qs, unquote

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WILDCARDS = ("0.0.0.0", "::", "")
"""Bind addresses that serve every interface: the Host a client names cannot be known."""
LOOPBACK = ("127.0.0.1", "localhost", "::1")


async def refuse(send: Send, status: int, code: str, message: str) -> None:
    """Answer with the API's error shape, without reading the request's body."""
    body = orjson.dumps({"code": code, "message": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def allowed_hosts(bound: str, named: Iterable[str] = ()) -> frozenset[str]:
    """The Host names a server bound to ``bound`` answers: that address, the loopback
    names when it is a loopback address, and those ``named`` (``--allowed-host``)."""
    names = {_name(bound)} | {_name(name) for name in named}
    if bound in LOOPBACK:
        names |= set(LOOPBACK)
    return frozenset(names)


def _name(host: str) -> str:
    """A Host header's name, lower case, without its port or an IPv6 literal's brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostRule:
    """A request whose Host is not a name this server answers is refused (421): a page
    of another site whose name was made to resolve to this address (DNS rebinding)
    names its own site in Host. Bound to every interface, any IP address is also
    accepted, as no rebinding page can have one for its name."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], any_ip: bool = False) -> None:
        self.app, self.hosts, self.any_ip = app, hosts, any_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = header(scope, b"host") or ""
            name = _name(given)
            if name not in self.hosts and not (self.any_ip and _is_ip(name)):
                await refuse(
                    send,
                    421,
                    "HOST_NOT_ALLOWED",
                    f"this server does not answer for Host {given!r}; it answers"
                    f" {', '.join(sorted(self.hosts))}: name others with --allowed-host NAME",
                )
                return
        await self.app(scope, receive, send)


class TokenRule:
    """Every request bears ``Authorization: Bearer <token>``, or gets 401; an EventSource
    cannot add the header, so ``?token=`` does too. The page and its static files
    load without it (they hold no data, and the page then asks for the token), and
    webhooks carry their own signature instead."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._open(scope):
            given = header(scope, b"authorization") or ""
            if not given:
                given = f"Bearer {_query_token(scope)}"
            if not hmac.compare_digest(given.encode(), self.expected):
                await refuse(
                    send,
                    401,
                    "UNAUTHORIZED",
                    "this server needs the header Authorization: Bearer <token>",
                )
                return
        await self.app(scope, receive, send)

    def _open(self, scope: Scope) -> bool:
        path = str(scope["path"])
        if ".." in path.split("/"):
            return False
        if path == "/":
            return scope["method"] in ("GET", "HEAD")
        if path.startswith("/static/"):
            return scope["method"] in ("GET", "HEAD")
        return path.startswith("/webhooks/")


def _query_token(scope: Scope) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else ""


class _TooLarge(Exception):
    """A body grew past the limit while it arrived."""


class BodyLimit:
    """A body over ``limit`` bytes is a 413 before it is read whole: at once when its
    Content-Length says so, else as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = header(scope, b"content-length")
        if length is not None and (not length.isascii() or not length.isdigit()):
            await refuse(send, 400, "INVALID_REQUEST", f"Content-Length {length!r} is no size")
            return
        if length is not None and int(length) > self.limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await refuse(
            send,
            413,
            "BODY_TOO_LARGE",
            f"the body is over {self.limit} bytes; send less, or start the server with a"
            " larger --max-body",
        )


class SlashesInSegments:
    """Route on the path as sent, so ``/api/runs/a%2Fb`` names the run ``a/b`` (uvicorn
    decodes ``%2F`` to ``/``, which the routes would take for a separator). Each
    segment is decoded, then its ``%`` and ``/`` encoded again; ``path_params`` are
    decoded once more where they are read (``segment``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):  # as sent: each segment decoded here
                parts = [
                    unquote(part) for part in raw.split(b"?")[0].decode(errors="replace").split("/")
                ]
            else:  # already decoded: a %2F cannot be told from a separator
                parts = str(scope["path"]).split("/")
            scope = {**scope, "path": "/".join(_escape(part) for part in parts)}
        await self.app(scope, receive, send)


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def segment(value: str) -> str:
    """A path parameter as the client meant it (see ``SlashesInSegments``)."""
    return unquote(value)
