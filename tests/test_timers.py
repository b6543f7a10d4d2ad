"""The runtime's timer heap: order, cancellation, and no leftovers."""

from __future__ import annotations

import asyncio
import tracemalloc

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
    finally:
        await timers.stop()


async def test_timers_cancelled_after_they_fired_leave_nothing_behind() -> None:
    """Every woken wait cancels its timer, which has fired: memory must not grow with
    them (20,000 such timers would keep about a megabyte)."""
    clock = durable.VirtualClock(start=0, auto_skip=False)
    timers = Timers(clock)
    timers.start()
    tracemalloc.start()
    try:
        await fire_and_cancel(timers, clock, 1000)  # the first round's allocations stay
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            await fire_and_cancel(timers, clock, 1000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        await timers.stop()
    assert grown < 100_000


async def fire_and_cancel(timers: Timers, clock: durable.VirtualClock, count: int) -> None:
    due = clock.now() + 1
    ids = [timers.call_at(due, lambda: None) for _ in range(count)]
    clock.advance(2)
    while timers.next_deadline() is not None:
        await asyncio.sleep(0)
    for timer_id in ids:
        timers.cancel(timer_id)
