"""What every endpoint shares: JSON responses, the ``{"code", "message"}`` error shape
and its status, the request body read as JSON, and a handler's signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

import durable
from durable._base.codec import loads_input

STATUS = {
    "RUN_NOT_FOUND": 404,
    "WORKFLOW_NOT_FOUND": 404,
    "INVALID_RESPONSE": 400,
    "IDEMPOTENCY_KEY_MISMATCH": 409,
    "NO_PENDING_WAIT": 409,
    "DUPLICATE_IN_QUEUE": 409,
    "NO_BUDGET": 409,
    "SERIALIZATION": 422,
    "INVALID_REQUEST": 422,
}


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(code: str, message: str, status: int | None = None) -> JSON:
    return JSON({"code": code, "message": message}, status_code=status or STATUS.get(code, 400))


class BadRequest(Exception):
    """A request whose body or parameters do not fit: 422."""


Handler = Callable[[durable.Runtime, Request], Awaitable[Response]]
"""An endpoint of the API: the runtime and the request in, the response out."""


async def read_body(request: Request) -> Any:
    """The JSON body (None if empty; the content type was checked on the way in). An
    integer beyond 64 bits is refused (422 SERIALIZATION naming its place), never
    rounded to a float."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return loads_input(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
