"""The runtime's timers: one heap, one task, for every durable wait of every run.

Timers live here rather than in the coroutines that wait on them so that a
run can be unloaded and still be woken on time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from durable._base.clock import Clock


class Timers:
    """Calls ``callback`` once ``clock.now()`` reaches a deadline."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._pending: set[int] = set()
        self._cancelled: set[int] = set()
        self._counter = itertools.count()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="durable-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def call_at(self, deadline: float, callback: Callable[[], None]) -> int:
        """Schedule ``callback``; returns an id for ``cancel``."""
        timer_id = next(self._counter)
        heapq.heappush(self._heap, (deadline, timer_id, callback))
        self._pending.add(timer_id)
        self._changed.set()
        return timer_id

    def cancel(self, timer_id: int) -> None:
        """Forget a timer; cancelling one that already fired does nothing."""
        if timer_id in self._pending:
            self._pending.discard(timer_id)
            self._cancelled.add(timer_id)

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap)[1])

    async def _loop(self) -> None:
        while True:
            self._changed.clear()
            self._fire_due()
            deadline = self.next_deadline()
            if deadline is None:
                await self._changed.wait()
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()

    def _fire_due(self) -> None:
        now = self.clock.now()
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > now:
                return
            _, timer_id, callback = heapq.heappop(self._heap)
            self._pending.discard(timer_id)
            callback()
