"""Time behind a protocol: the system clock, and a virtual clock for tests.

The runtime asks its clock for the time, so tests can skip a 30-day sleep in a
millisecond. Leases alone are measured in ``wall_time()``, whatever the clock:
other processes read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol, cast, runtime_checkable

from durable._base.aio import wait_set


@runtime_checkable
class Clock(Protocol):
    """Seconds since the epoch, and a way to wait for a moment in that time."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (it may return earlier; callers re-check)."""
        ...


def wall_time() -> float:
    """Seconds since the epoch by the system's clock: what ``SystemClock`` tells, and what
    leases are measured in whatever clock a runtime has (other processes read them)."""
    return time.time()


def awaiting(clock: Clock | None, happened: Callable[[], bool]) -> AbstractContextManager[None]:
    """Around a wait for a run to do something (its end, a question, a state key, a
    stream value): a clock that skips time does so meanwhile, until ``happened()``; any
    other clock (or None) does nothing."""
    if clock is None:
        return contextlib.nullcontext()
    return time_skipping(clock).awaiting(happened)


class TimeSkipping(Protocol):
    """A clock that skips time while every run of the runtimes on it is parked (the
    virtual clock); what a runtime tells it, and asks it."""

    @property
    def skips(self) -> bool:
        """Whether it skips now (a runtime then keeps parked runs loaded, to see them)."""
        ...

    def attach(self, parked: Callable[[], bool]) -> Callable[[], None]: ...

    def awaiting(self, happened: Callable[[], bool]) -> AbstractContextManager[None]: ...

    def poke(self) -> None: ...


class _NeverSkips:
    """The time skipping of a clock that never skips: nothing to tell it."""

    skips = False

    def attach(self, parked: Callable[[], bool]) -> Callable[[], None]:
        return lambda: None

    def awaiting(self, happened: Callable[[], bool]) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def poke(self) -> None:
        pass


_NEVER_SKIPS = _NeverSkips()


def time_skipping(clock: Clock) -> TimeSkipping:
    """How ``clock`` skips time: the clock itself if it can, else a skipping that never does."""
    return cast(TimeSkipping, clock) if _skips_time(type(clock)) else _NEVER_SKIPS


@functools.cache
def _skips_time(kind: type) -> bool:
    """Whether clocks of ``kind`` are ``TimeSkipping``: asked once per class, since an
    ``isinstance`` against a protocol inspects every member each time."""
    return all(hasattr(kind, name) for name in ("skips", "attach", "awaiting", "poke"))


class SystemClock:
    """Wall-clock time; waits with the event loop's timer."""

    def now(self) -> float:
        return wall_time()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - wall_time()))


class VirtualClock:
    """A clock that moves only when told to, or while a test waits for a run.

    ``advance(seconds)`` moves it by hand. With ``auto_skip`` (the default) it
    skips as Temporal's time-skipping test environment does: only while someone
    awaits something a run has yet to do (``result()``, ``wait_for_question``,
    ``wait_state``, reading a stream), and only when every run of every runtime
    on it is parked, it moves to the earliest timer, one timer at a time, and
    stops as soon as the awaited thing has happened. Set ``auto_skip = False``
    to hold time still.
    """

    def __init__(self, start: float = 1_767_225_600.0, *, auto_skip: bool = True) -> None:
        self._now = start
        self.auto_skip = auto_skip
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._awaited: list[Callable[[], bool]] = []
        self._parked_checks: list[Callable[[], bool]] = []
        self._poked: asyncio.Event | None = None
        self._skipper: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    @property
    def skips(self) -> bool:
        return self.auto_skip

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

    # -- skipping ------------------------------------------------------------

    def attach(self, parked: Callable[[], bool]) -> Callable[[], None]:
        """A runtime on this clock: ``parked()`` says whether all its runs wait for time
        or for news (none runs code or writes). Returns the call that detaches it."""
        self._parked_checks.append(parked)
        return lambda: self._parked_checks.remove(parked)

    @contextlib.contextmanager
    def awaiting(self, happened: Callable[[], bool]) -> Iterator[None]:
        """While the block runs, someone waits for a run to do something; ``happened()``
        turns True once it has, and time stops skipping at that moment."""
        self._awaited.append(happened)
        if self._skipper is None:
            self._skipper = asyncio.get_running_loop().create_task(
                self._skip(), name="durable-virtual-time"
            )
        self.poke()
        try:
            yield
        finally:
            self._awaited.remove(happened)
            self.poke()

    def poke(self) -> None:
        """Something changed (a run parked): look again whether to skip."""
        if self._poked is not None:
            self._poked.set()

    def _wanted(self) -> bool:
        return (
            self.auto_skip
            and any(not happened() for happened in self._awaited)
            and all(parked() for parked in self._parked_checks)
        )

    def _next_deadline(self) -> float | None:
        while self._waiters and self._waiters[0][2].done():  # given up (cancelled)
            heapq.heappop(self._waiters)
        return self._waiters[0][0] if self._waiters else None

    async def _skip(self) -> None:
        poked = self._poked = asyncio.Event()
        try:
            while self._awaited:
                poked.clear()
                for _ in range(_LET_WOKEN_RUN):  # let what was woken run first
                    await asyncio.sleep(0)
                deadline = self._next_deadline()
                if deadline is not None and self._wanted():
                    self.set(deadline)  # one timer at a time: the earliest
                    continue
                # A run also goes quiet without a word (a gathered branch's write
                # settled), so look again soon even when nothing pokes.
                await wait_set(poked, _LOOK_AGAIN)
        finally:
            self._poked = None
            self._skipper = None


_LET_WOKEN_RUN = 3
"""Loop iterations given to what a skip woke before looking again."""
_LOOK_AGAIN = 0.002
"""Seconds (real) between looks while a test awaits a run that is not parked."""
