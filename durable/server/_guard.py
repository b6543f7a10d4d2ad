"""What a request passes before the routes: its token.

Plain ASGI middleware (no ``BaseHTTPMiddleware``), each refusal the API's ``{"code",
"message"}`` shape.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send


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
