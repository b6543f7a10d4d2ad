"""Retracts a reader gets for attempts that never complete: the loser of a race, a
cancelled run's step, and the attempts a re-run supersedes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.journal.records import EventRecord
from durable.journal.streams import StreamFold, fold_event

from .helpers import status_is

GATES: dict[str, asyncio.Event] = {}
"""Events a test sets once a reader has seen what it waits for (made in the test's loop)."""


async def read_items(
    rt: durable.Runtime, run_id: str, key: str, after: int | None = None
) -> list[durable.StreamItem]:
    return [item async for item in rt.read_stream(run_id, key, after=after)]


def folded(items: list[durable.StreamItem]) -> str:
    """The text a client shows: every value but those of a retracted attempt."""
    void = {(item.position, item.attempt) for item in items if item.kind == "retract"}
    return "".join(
        str(item.value)
        for item in items
        if item.kind == "value" and (item.position, item.attempt) not in void
    )


def shape(items: list[durable.StreamItem]) -> list[tuple[str, Any, int | None, int | None]]:
    return [(item.kind, item.value, item.position, item.attempt) for item in items]


async def assert_resumable(
    rt: durable.Runtime, run_id: str, items: list[durable.StreamItem]
) -> None:
    """Cursors in order, none shared; resumed past any item, a reader gets the rest."""
    cursors = [item.cursor for item in items]
    assert cursors == sorted(set(cursors))
    for i, item in enumerate(items):
        assert await read_items(rt, run_id, "answer", after=item.cursor) == items[i + 1 :]


async def follow(
    stream: AsyncIterator[durable.StreamItem], into: list[durable.StreamItem], gate: str, seen: int
) -> None:
    """Read the stream live into ``into``; set the gate once ``seen`` items came."""
    async for item in stream:
        into.append(item)
        if len(into) == seen:
            GATES[gate].set()


@durable.step
async def slow_answer() -> str:
    await durable.write_stream("answer", "slow ")
    await durable.write_stream("answer", "guess")
    await asyncio.Event().wait()  # until the race is won by the other step
    return "slow"


@durable.step
async def fast_answer() -> str:
    await GATES["race"].wait()  # until a reader has seen the loser's values
    await durable.write_stream("answer", "fast ")
    await durable.write_stream("answer", "answer")
    return "fast"


@durable.workflow(name="retracts.race")
async def race(ctx: durable.WorkflowContext) -> str:
    _, value = await ctx.first(slow_answer(), fast_answer())
    await ctx.close_stream("answer")
    await ctx.wait_for_event("done")
    return str(value)


async def test_a_race_losers_values_are_retracted_for_live_and_late_readers(db: Path) -> None:
    GATES["race"] = asyncio.Event()
    live: list[durable.StreamItem] = []
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as reader:
        await rt.start(race, run_id="r")
        following = asyncio.ensure_future(
            follow(reader.read_stream("r", "answer"), live, "race", 2)
        )
        await asyncio.wait_for(following, 10)  # the stream is closed after the race
        await status_is(rt, "r", "waiting")
    assert shape(live) == [
        ("value", "slow ", 0, 1),
        ("value", "guess", 0, 1),
        ("value", "fast ", 1, 1),
        ("value", "answer", 1, 1),
        ("retract", None, 0, 1),  # the loser was cancelled: its values are void
    ]
    assert folded(live) == "fast answer"
    # Replayed at every suspension: the race takes the same branch, voids nothing again.
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("r", "done")
        assert await rt.handle("r").result(timeout=10) == "fast"
        assert await read_items(rt, "r", "answer") == live  # a late reader: the same items
        await assert_resumable(rt, "r", live)
        voids = [e for e in await rt.history("r") if e["kind"] == "stream.voided"]
        assert [(e["position"], e["payload"]) for e in voids] == [
            (None, {"position": 0, "attempt": 1})
        ]


@durable.step
async def endless_answer() -> str:
    await durable.write_stream("answer", "never ")
    await durable.write_stream("answer", "finished")
    await asyncio.Event().wait()  # until the run is cancelled
    return "unreachable"


@durable.workflow(name="retracts.cancelled")
async def cancelled(ctx: durable.WorkflowContext) -> str:
    await ctx.write_stream("answer", "asked: ")  # workflow code's: never retracted
    return await endless_answer()


@pytest.mark.parametrize("where", ["here", "elsewhere"])
async def test_a_cancelled_runs_open_attempt_is_retracted_where_the_run_ends(
    db: Path, where: str
) -> None:
    GATES["cancel"] = asyncio.Event()
    live: list[durable.StreamItem] = []
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as reader:
        await rt.start(cancelled, run_id="c")
        following = asyncio.ensure_future(
            follow(reader.read_stream("c", "answer"), live, "cancel", 3)
        )
        await asyncio.wait_for(GATES["cancel"].wait(), 10)
        # In the runtime that runs it, or another: either way the run writes nothing more.
        await (rt if where == "here" else reader).cancel("c")
        await asyncio.wait_for(following, 10)  # the stream ends with the run
        assert (await rt.get_run("c")).status == "cancelled"
        assert shape(live) == [
            ("value", "asked: ", None, None),
            ("value", "never ", 1, 1),
            ("value", "finished", 1, 1),
            ("retract", None, 1, 1),
        ]
        history = await rt.history("c")
        (cancel,) = [e for e in history if e["kind"] == "run.cancel"]
        assert live[-1].cursor == cancel["seq"]  # retracted where the run ended
        assert not [e for e in history if e["kind"] == "stream.voided"]
        assert await read_items(rt, "c", "answer") == live
        assert await read_items(rt, "c", "answer", after=live[-2].cursor) == live[-1:]
        assert folded(live) == "asked: "


@durable.workflow(name="retracts.abandoned")
async def abandoned(ctx: durable.WorkflowContext) -> str:
    answer = asyncio.ensure_future(endless_answer())
    await ctx.wait_for_event("stop")
    answer.cancel()  # workflow code gives up on the step
    await asyncio.gather(answer, return_exceptions=True)
    await ctx.write_stream("answer", "gave up")
    await ctx.close_stream("answer")
    return "stopped"


async def test_a_step_cancelled_by_workflow_code_has_its_values_retracted(db: Path) -> None:
    GATES["abandon"] = asyncio.Event()
    live: list[durable.StreamItem] = []
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as reader:
        await rt.start(abandoned, run_id="a")
        following = asyncio.ensure_future(
            follow(reader.read_stream("a", "answer"), live, "abandon", 2)
        )
        await asyncio.wait_for(GATES["abandon"].wait(), 10)
        await reader.send_event("a", "stop")
        assert await rt.handle("a").result(timeout=10) == "stopped"
        await asyncio.wait_for(following, 10)
        assert shape(live) == [
            ("value", "never ", 0, 1),
            ("value", "finished", 0, 1),
            ("retract", None, 0, 1),  # before what the workflow wrote next
            ("value", "gave up", None, None),
        ]
        assert await read_items(rt, "a", "answer") == live


COUNTS: dict[str, int] = {}
CODE = {"body": True}


async def _say(step: str, words: list[str]) -> str:
    COUNTS[step] = COUNTS.get(step, 0) + 1
    for word in words:
        await durable.write_stream("answer", f"{word}{COUNTS[step]} ")
    return step


@durable.workflow(name="retracts.rerun")
async def rerun(ctx: durable.WorkflowContext) -> list[str]:
    said = [await ctx.step("intro", _say, "intro", ["hello"])]
    if CODE["body"]:
        said.append(await ctx.step("body", _say, "body", ["big", "world"]))
    return said


def records(history: list[dict[str, Any]]) -> list[EventRecord]:
    return [
        EventRecord(
            e["seq"],
            "x",
            e["position"],
            e["kind"],
            e["name"],
            json.dumps(e["payload"]),
            0.0,
            e["superseded"],
        )
        for e in history
    ]


async def test_a_rerun_retracts_the_superseded_attempts_for_a_reader_that_followed(
    db: Path,
) -> None:
    COUNTS.clear()
    CODE["body"] = True
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(rerun, run_id="x")).result(timeout=10) == ["intro", "body"]
        before = await read_items(rt, "x", "answer")  # a reader that followed to the end
        assert folded(before) == "hello1 big1 world1 "
        history = await rt.history("x")

        CODE["body"] = False  # re-run under code that no longer runs the step at 1
        await rt.rerun_from("x", 1)
        assert await rt.handle("x").result(timeout=10) == ["intro"]
        # It resumes past the last item it saw: the superseded attempt is taken back.
        resumed = await read_items(rt, "x", "answer", after=before[-1].cursor)
        assert shape(resumed) == [("retract", None, 1, 1)]

        CODE["body"] = True  # and again under code that runs it: a new attempt
        await rt.rerun_from("x", 1)
        assert await rt.handle("x").result(timeout=10) == ["intro", "body"]
        again = await read_items(rt, "x", "answer", after=resumed[-1].cursor)
        assert shape(again) == [("value", "big2 ", 1, 2), ("value", "world2 ", 1, 2)]

        late = await read_items(rt, "x", "answer")
        assert late == before + resumed + again  # the same items for a reader that starts now
        assert folded(late) == "hello1 big2 world2 "
        await assert_resumable(rt, "x", late)

        # A reader that was live throughout folded the first events unsuperseded, as
        # they were then: it makes the same items.
        seen = records(history)
        news = [e for e in records(await rt.history("x")) if e.seq > seen[-1].seq]
        fold = StreamFold("answer")
        assert [item for e in seen + news for item in fold_event(fold, e)] == late


def test_a_cancel_retracts_every_open_attempt_of_the_stream_at_its_cursor() -> None:
    """Steps writing to one stream side by side when the run is cancelled: one retract
    each, in position order, at the cancel's cursor; a completed attempt's stand."""

    def value(seq: int, position: int, text: str) -> EventRecord:
        where = {"value": text, "step": "s", "position": position, "attempt": 1}
        return EventRecord(seq, "x", None, "stream.value", "answer", json.dumps(where), 0.0)

    events = [
        EventRecord(1, "x", 0, "step.started", "s", '{"attempt":1}', 0.0),
        EventRecord(2, "x", 1, "step.started", "s", '{"attempt":1}', 0.0),
        EventRecord(3, "x", 2, "step.started", "s", '{"attempt":1}', 0.0),
        value(4, 2, "c"),
        value(5, 0, "a"),
        value(6, 1, "b"),
        EventRecord(7, "x", 1, "step.completed", "s", '{"result":null}', 0.0),
        EventRecord(8, "x", None, "run.cancel", "cancel", "{}", 0.0),
    ]
    fold = StreamFold("answer")
    items = [item for event in events for item in fold_event(fold, event)]
    assert [(i.cursor, i.kind, i.value, i.position) for i in items] == [
        (4, "value", "c", 2),
        (5, "value", "a", 0),
        (6, "value", "b", 1),
        (8, "retract", None, 0),
        (8, "retract", None, 2),
    ]
