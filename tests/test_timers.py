"""The runtime's timer heap: order, cancellation, and no leftovers."""

from __future__ import annotations

import asyncio

import durable
from durable.runtime.timers import Timers


async def test_timers_fire_in_order_and_leave_nothing_behind() -> None:
    clock = durable.VirtualClock(start=0, auto_skip=False)
    timers = Timers(clock)
    timers.start()
    fired: list[str] = []
    try:
        late = timers.call_at(20, lambda: fired.append("late"))
        early = timers.call_at(10, lambda: fired.append("early"))
        dropped = timers.call_at(15, lambda: fired.append("dropped"))
        timers.cancel(dropped)
        clock.advance(30)
        for _ in range(5):
            await asyncio.sleep(0)
        # Cancelling timers that already fired (as every woken wait does) keeps nothing.
        timers.cancel(early)
        timers.cancel(late)
        assert fired == ["early", "late"]
        assert timers.next_deadline() is None
        assert not timers._pending and not timers._cancelled
    finally:
        await timers.stop()
