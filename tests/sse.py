"""Reading Server-Sent Events as a client does: one event per blank-line-ended block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


def next_event(lines: Iterator[str]) -> dict[str, Any]:
    """The next event of an SSE body's lines: its ``id`` (None if it has none), its
    ``event`` name and its ``data`` read as JSON."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if fields:
                break
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    return {
        "id": fields.get("id"),
        "event": fields.get("event", "message"),
        "data": orjson.loads(fields["data"]),
    }
