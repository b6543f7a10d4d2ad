"""Watching a run for news: the one loop behind every wait on a run from outside it.

``RunHandle.result`` (of a run not live here), ``rt.wait_for_question``,
``rt.wait_state``, ``rt.read_stream`` and the nudge a run gets when a run it
attached ends are each a short fold over ``watch``.
It subscribes to the next change before it reads, so a change made while it
reads is not missed; reads the run's record before its events, so an end seen
implies every event the run wrote; yields both; stops once it has yielded the
run's end; and while it waits for a change it tells the clock that someone
awaits the run (a virtual clock skips time meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from durable._base.aio import within
from durable._base.clock import Clock, awaiting
from durable.errors import RunNotFound
from durable.journal.records import TERMINAL, EventRecord, RunRecord

T = TypeVar("T")


class Runs(Protocol):
    """What a watch reads: a run's record and its events (the store)."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]: ...


class Changes(Protocol):
    """Where a watch hears that something changed (the runtime's change-feed reader)."""

    def next_change(self, run_id: str | None = None) -> asyncio.Future[None]: ...


@dataclass(frozen=True, slots=True)
class News:
    """One look at a run: its record, then the events the watch was asked for."""

    record: RunRecord
    events: list[EventRecord]

    @property
    def ended(self) -> bool:
        return self.record.status in TERMINAL


async def watch(
    runs: Runs,
    changes: Changes,
    clock: Clock | None,
    run_id: str,
    events: Literal["none", "new", "all"],
    look_every: float | None = None,
) -> AsyncGenerator[News, None]:
    """A look at the run now and after each change that may concern it, until it ends.

    ``events`` says which events each look carries: ``"none"``, those ``"new"``
    since the look before, or ``"all"`` (the whole journal as it stands, with the
    entries a re-run superseded since flagged). ``clock`` is told that someone awaits
    the run (None: nobody a virtual clock should skip time for, a run's own wait).
    ``look_every`` (seconds): look again that often even without news of a change
    (a change feed that polls hears other processes' writes late). ``RunNotFound``
    for an unknown run. Close it (``contextlib.aclosing``) when done
    before the run's end.
    """
    after = 0
    while True:
        changed = changes.next_change(run_id)
        try:  # never left pending: a close would set an error nobody reads
            record = await runs.get_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            found = [] if events == "none" else await runs.events_after(run_id, after)
            if found and events == "new":
                after = found[-1].seq
            yield News(record, found)
            if record.status in TERMINAL:
                return
            with awaiting(clock, changed.done):
                if look_every is None:
                    await changed
                else:
                    await asyncio.wait([changed], timeout=look_every)
                    if changed.done():
                        changed.result()  # the runtime closed: its error
        finally:
            changed.cancel()


async def in_time(
    waiting: Coroutine[Any, Any, T], timeout: float | None, late: Callable[[], Awaitable[str]]
) -> T:
    """``await waiting``, or once ``timeout`` real seconds have passed (None: never) a
    ``TimeoutError`` saying ``await late()``: what the run is doing instead."""
    if timeout is None:
        return await waiting
    try:
        return await within(waiting, timeout)
    except TimeoutError:
        message = await late()
    raise TimeoutError(message) from None
