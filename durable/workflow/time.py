"""Durable time: ``ctx.sleep``, ``ctx.sleep_until`` and ``ctx.now``.

A sleep journals when it wakes, so after a restart only the time left is
waited; ``now`` is journaled, so a replay sees the same moment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from durable._base.codec import encode
from durable._base.numbers import seconds as finite_seconds
from durable.journal.kinds import SLEEP, SLEEP_STARTED
from durable.workflow.branches import became_ready
from durable.workflow.calls import Calls
from durable.workflow.values import recorded


def sleep(calls: Calls, duration: float | dt.timedelta) -> Coroutine[Any, Any, None]:
    raw = duration.total_seconds() if isinstance(duration, dt.timedelta) else duration
    length = finite_seconds("ctx.sleep's duration", raw, zero_ok=True)
    return _sleep(calls, calls.take(SLEEP, "sleep"), lambda now: now + length)


def sleep_until(calls: Calls, moment: dt.datetime) -> Coroutine[Any, Any, None]:
    if moment.tzinfo is None:
        raise ValueError(
            "ctx.sleep_until needs a timezone-aware datetime,"
            " e.g. datetime.now(timezone.utc) + timedelta(hours=1)"
        )
    wake_at = moment.timestamp()
    return _sleep(calls, calls.take(SLEEP, "sleep"), lambda now: wake_at)


async def _sleep(calls: Calls, position: int, wake_at_from: Callable[[float], float]) -> None:
    host = calls.host
    events = host.journal.at(position)
    if events:
        wake_at = float(calls.read(events[0])["wake_at"])
    else:
        wake_at = wake_at_from(host.clock.now())
        await host.append(position, SLEEP_STARTED, "sleep", encode({"wake_at": wake_at}))
    while host.clock.now() < wake_at:
        await host.suspend("sleeping", wake_at, None)
    became_ready(wake_at)
    host.journal.settle(position)


def now(calls: Calls) -> dt.datetime:
    seconds = recorded(calls, "now", lambda: calls.host.clock.now())
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
