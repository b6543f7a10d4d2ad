"""``watch``, the loop behind every wait on a run, over a fake store and change feed.

It takes its collaborators explicitly, so these tests hand it fakes: a change
that lands while it reads is not missed, it reads the events it is asked for,
and it lets go of its subscription when closed early.
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import aclosing
from typing import Literal

import pytest

from durable._base.clock import SystemClock
from durable.errors import RunNotFound
from durable.journal.records import EventRecord, RunRecord
from durable.runtime.watch import News, watch

RUN = RunRecord("r", "wf", None, "running", "[]", "", None, None, None, None, 0.0, 0.0)


def event(seq: int) -> EventRecord:
    return EventRecord(seq, "r", seq, "step.completed", f"s{seq}", "null", 0.0)


class Fake:
    """A store of one run and a change feed: ``change`` alters the run and wakes waiters."""

    def __init__(self) -> None:
        self.record: RunRecord | None = RUN
        self.events: list[EventRecord] = []
        self.waiting: list[asyncio.Future[None]] = []
        self.on_read: list[RunRecord] = []  # what the run becomes as it is read, once each

    async def get_run(self, run_id: str) -> RunRecord | None:
        seen = self.record
        if self.on_read:
            self.change(self.on_read.pop(0))
        return seen

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        return [e for e in self.events if e.seq > seq]

    def next_change(self, run_id: str | None = None) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return future

    def change(self, record: RunRecord, *new: EventRecord) -> None:
        self.record = record
        self.events += new
        for future in self.waiting:
            if not future.done():
                future.set_result(None)
        self.waiting.clear()


async def looks(fake: Fake, events: Literal["none", "new", "all"] = "new") -> list[News]:
    return [news async for news in watch(fake, fake, SystemClock(), "r", events)]


async def test_a_change_made_while_it_reads_is_not_missed() -> None:
    fake = Fake()
    fake.on_read = [dataclasses.replace(RUN, status="completed")]
    seen = await asyncio.wait_for(looks(fake), 5)
    assert [news.record.status for news in seen] == ["running", "completed"]
    assert not seen[0].ended and seen[1].ended


@pytest.mark.parametrize(
    ("events", "expected"), [("none", [[], []]), ("new", [[1], [2]]), ("all", [[1], [1, 2]])]
)
async def test_it_reads_the_events_asked_for(
    events: Literal["none", "new", "all"], expected: list[list[int]]
) -> None:
    fake = Fake()
    fake.events = [event(1)]
    watching = asyncio.ensure_future(looks(fake, events))
    while not fake.waiting:  # until the first look is taken and the watch waits
        await asyncio.sleep(0)
    fake.change(dataclasses.replace(RUN, status="failed"), event(2))
    seen = await asyncio.wait_for(watching, 5)
    assert [[e.seq for e in news.events] for news in seen] == expected


async def test_an_unknown_run_is_not_found() -> None:
    fake = Fake()
    fake.record = None
    with pytest.raises(RunNotFound):
        await looks(fake)


async def test_closed_early_it_lets_go_of_its_subscription() -> None:
    fake = Fake()
    async with aclosing(watch(fake, fake, None, "r", "none")) as seen:
        async for news in seen:
            assert not news.ended
            break
    assert fake.waiting and all(future.cancelled() for future in fake.waiting)
