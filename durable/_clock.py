"""Time behind a protocol: the system clock, and a virtual clock for tests.

Nothing in the library reads wall time directly; the runtime asks its clock,
so tests can skip a 30-day sleep in a millisecond.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Seconds since the epoch, and a way to wait for a moment in that time."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (it may return earlier; callers re-check)."""
        ...


class SystemClock:
    """Wall-clock time; waits with the event loop's timer."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.time()))


class VirtualClock:
    """A clock that moves only when told to.

    ``advance(seconds)`` moves it by hand. With ``auto_skip`` (the default) a
    runtime also moves it to the next timer whenever every live run is blocked
    on a timer, so long sleeps finish at once. Set ``auto_skip = False`` to
    hold time still, for example to answer a wait before its timeout.
    """

    def __init__(self, start: float = 1_767_225_600.0, *, auto_skip: bool = True) -> None:
        self._now = start
        self.auto_skip = auto_skip
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (deadline, next(self._counter), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake whatever is due."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self.set(self._now + seconds)

    def set(self, moment: float) -> None:
        """Move time forward to ``moment`` (never backward)."""
        self._now = max(self._now, moment)
        while self._waiters and self._waiters[0][0] <= self._now:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
