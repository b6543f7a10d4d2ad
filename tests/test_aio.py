"""The library's timed waits keep a cancellation that races with their completion."""

from __future__ import annotations

import asyncio

import pytest

from durable._base.aio import wait_set, within


async def test_wait_set_is_cancelled_even_as_the_event_is_set() -> None:
    event = asyncio.Event()
    waiter = asyncio.ensure_future(wait_set(event, 10))
    await asyncio.sleep(0)
    event.set()
    waiter.cancel()  # in the same tick: asyncio.wait_for would return True here
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_within_is_cancelled_even_as_the_awaited_finishes() -> None:
    done = asyncio.get_running_loop().create_future()
    waiter = asyncio.ensure_future(within(done, 10))
    await asyncio.sleep(0)
    done.set_result("finished")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_within_returns_or_times_out() -> None:
    assert await within(asyncio.sleep(0, "value"), 1) == "value"
    slow = asyncio.ensure_future(asyncio.sleep(10))
    with pytest.raises(asyncio.TimeoutError):
        await within(slow, 0.01)
    assert slow.cancelled()
