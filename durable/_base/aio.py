"""Waiting with a timeout without losing a cancellation.

``asyncio.wait_for`` before Python 3.12 swallows a cancellation that arrives as
the awaited thing finishes: the caller carries on as if never cancelled, and a
loop that is being shut down runs forever. ``asyncio.wait`` has no such race,
so every timed wait in the library goes through ``within``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def ready(value: T) -> T:
    """An awaitable that gives ``value``: the answer of a call that had nothing to do."""
    return value


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """``await awaitable``, or cancel it and raise ``asyncio.TimeoutError`` after ``timeout``."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})  # let it unwind; our own cancellation still raises
        if task.cancelled():
            raise TimeoutError
    return task.result()


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``event``; whether it was set."""
    with contextlib.suppress(TimeoutError):
        await within(event.wait(), timeout)
    return event.is_set()


class TaskSet:
    """Background tasks kept referenced until they finish (asyncio holds only weak ones)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class Backoff:
    """Waits that double from ``first`` to ``cap`` seconds, for one fault that passes,
    until ``give_up_after`` seconds have gone by (the writer and the reads share it)."""

    def __init__(self, give_up_after: float, first: float = 0.01, cap: float = 1.0) -> None:
        self._give_up_at = asyncio.get_running_loop().time() + give_up_after
        self._delay = first
        self._cap = cap

    async def wait(self) -> bool:
        """Sleep before the next try; False (at once) when it is time to give up."""
        if asyncio.get_running_loop().time() > self._give_up_at:
            return False
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, self._cap)
        return True

    @property
    def delay(self) -> float:
        return self._delay
