"""Values that must not change on replay (``ctx.now``, ``ctx.uuid4``, ``ctx.random``):
made once, journaled, and read back from the journal by every replay."""

from __future__ import annotations

import random as _random
import uuid as _uuid
from collections.abc import Callable
from typing import Any

from durable._base.codec import encode
from durable.journal.kinds import VALUE, VALUE_CALL
from durable.workflow.calls import Calls


def recorded(calls: Calls, name: str, make: Callable[[], Any]) -> Any:
    """``make()``'s value, journaled under ``name``; on replay, the journaled value."""
    position = calls.take(VALUE_CALL, name)
    journal = calls.host.journal
    events = journal.at(position)
    journal.settle(position)
    if events:
        return calls.read(events[0])["value"]
    value = make()
    calls.host.append_nowait(position, VALUE, name, encode({"value": value}))
    return value


def uuid4(calls: Calls) -> _uuid.UUID:
    return _uuid.UUID(recorded(calls, "uuid4", lambda: str(_uuid.uuid4())))


def random(calls: Calls) -> float:
    return float(recorded(calls, "random", _random.random))
