"""Streams: written once by workflows and steps, read live from another runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import commits, status_is, until
from .processes import cli

CALLS: list[str] = []


@durable.workflow(name="streams.progress")
async def progress(ctx: durable.WorkflowContext) -> str:
    await ctx.write_stream("progress", {"done": 1})
    await ctx.wait_for_event("more")
    await ctx.write_stream("progress", {"done": 2})
    await ctx.close_stream("progress")
    await ctx.wait_for_event("end")
    return "ok"


async def read_items(
    rt: durable.Runtime, run_id: str, key: str, after: int | None = None
) -> list[durable.StreamItem]:
    return [item async for item in rt.read_stream(run_id, key, after=after)]


async def read_all(rt: durable.Runtime, run_id: str, key: str) -> list[Any]:
    """The stream's values, with none retracted (tests of streams that retract none)."""
    items = await read_items(rt, run_id, key)
    assert all(item.kind == "value" for item in items), items
    return [item.value for item in items]


async def test_a_stream_is_read_live_from_another_runtime_until_closed(db: Path) -> None:
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as reader:
        await rt.start(progress, run_id="p")
        stream = reader.read_stream("p", "progress")
        first = await asyncio.wait_for(anext(stream), 10)
        assert (first.kind, first.value, first.position, first.attempt) == (
            "value",
            {"done": 1},
            None,  # workflow code's: no step attempt, never retracted
            None,
        )
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing more yet: the reader waits, live
        await reader.send_event("p", "more")
        second = await asyncio.wait_for(waiting, 10)
        assert second.value == {"done": 2} and second.cursor > first.cursor
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 10)  # closed, though the run goes on
        await status_is(reader, "p", "waiting")  # the stream closed; the run goes on
        await reader.send_event("p", "end")
        await rt.handle("p").result(timeout=10)


async def test_a_replayed_workflow_writes_its_stream_once(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(progress, run_id="p")
        await status_is(rt, "p", "waiting")
    async with durable.Runtime(db, always_replay=True) as rt:
        for name in ("more", "end"):
            await rt.send_event("p", name)
        await rt.handle("p").result(timeout=10)
        assert await read_all(rt, "p", "progress") == [{"done": 1}, {"done": 2}]


async def _tokens(prompt: str) -> AsyncIterator[str]:
    CALLS.append(prompt)
    for token in prompt.split():
        yield token


@durable.workflow(name="streams.llm")
async def llm(ctx: durable.WorkflowContext, prompt: str) -> list[str]:
    answer = await ctx.step("answer", _tokens, prompt)
    await ctx.wait_for_event("done")
    return list(answer)


async def test_an_async_generator_step_streams_what_it_yields_and_returns_it(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(llm, "the quick fox", run_id="l")
        await status_is(rt, "l", "waiting")
        first = await asyncio.wait_for(anext(rt.read_stream("l", "answer")), 10)
        assert (first.value, first.position, first.attempt) == ("the", 0, 1)
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("l", "done")
        assert await rt.handle("l").result(timeout=10) == ["the", "quick", "fox"]
        assert await read_all(rt, "l", "answer") == ["the", "quick", "fox"]  # ends with the run
    assert CALLS == ["the quick fox"]


@durable.step(name="words")
async def words(text: str) -> AsyncIterator[str]:
    CALLS.append(text)
    for word in text.split():
        yield word


@durable.workflow(name="streams.decorated_generator")
async def decorated_generator(ctx: durable.WorkflowContext, text: str) -> list[list[str]]:
    # Typed as the generator it is outside a workflow; awaited here, it is a step.
    awaited: list[str] = await words(text)  # type: ignore[misc]
    return [awaited, await ctx.step(words, text)]


async def test_awaiting_a_decorated_async_generator_is_the_same_step(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        handle = await rt.start(decorated_generator, "a b", run_id="g")
        assert await handle.result(timeout=10) == [["a", "b"], ["a", "b"]]
        assert await read_all(rt, "g", "words") == ["a", "b", "a", "b"]
        done = [e for e in await rt.history("g") if e["kind"] == "step.completed"]
        assert [(e["position"], e["name"]) for e in done] == [(0, "words"), (1, "words")]
    async with durable.Runtime(db, always_replay=True) as rt:  # replayed: nothing runs
        assert await rt.handle("g").result(timeout=10) == [["a", "b"], ["a", "b"]]
    assert CALLS == ["a b", "a b"]
    assert [word async for word in words("plain call")] == ["plain", "call"]


ATTEMPTS: list[int] = []


@durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def chatty() -> str:
    attempt = durable.step_info().attempt
    ATTEMPTS.append(attempt)
    await durable.write_stream("log", f"try {attempt} began")
    if attempt == 1:
        raise ValueError("flaky")
    await durable.write_stream("log", f"try {attempt} done")
    return "ok"


@durable.workflow(name="streams.chatty")
async def chatty_run(ctx: durable.WorkflowContext) -> str:
    return await chatty()


async def test_a_retried_attempts_values_are_retracted_before_the_next_attempts(
    db: Path,
) -> None:
    ATTEMPTS.clear()
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(chatty_run, run_id="c")).result(timeout=10) == "ok"
        items = await read_items(rt, "c", "log")
        assert [(i.kind, i.value, i.position, i.attempt) for i in items] == [
            ("value", "try 1 began", 0, 1),
            ("retract", None, 0, 1),
            ("value", "try 2 began", 0, 2),
            ("value", "try 2 done", 0, 2),
        ]
        cursors = [item.cursor for item in items]
        assert cursors == sorted(set(cursors))  # in order, none shared
        for i, item in enumerate(items):  # resumed past any item: the rest, nothing else
            assert await read_items(rt, "c", "log", after=item.cursor) == items[i + 1 :]
        assert await read_items(rt, "c", "log", after=0) == items
        tagged = [e["payload"] for e in await rt.history("c") if e["kind"] == "stream.value"]
        assert [(p["step"], p["position"], p["attempt"]) for p in tagged] == [
            ("chatty", 0, 1),
            ("chatty", 0, 2),
            ("chatty", 0, 2),
        ]
    assert ATTEMPTS == [1, 2]


@durable.step(timeout=0.2, retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def stalls() -> str:
    attempt = durable.step_info().attempt
    await durable.write_stream("out", f"attempt {attempt}")
    if attempt == 1:
        await asyncio.Event().wait()  # until its timeout cancels it
    return "done"


@durable.workflow(name="streams.stalls")
async def stalls_run(ctx: durable.WorkflowContext) -> str:
    return await stalls()


async def test_a_timed_out_attempts_values_are_retracted(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(stalls_run, run_id="t")).result(timeout=10) == "done"
        items = await read_items(rt, "t", "out")
        assert [(i.kind, i.value, i.attempt) for i in items] == [
            ("value", "attempt 1", 1),
            ("retract", None, 1),
            ("value", "attempt 2", 2),
        ]


@durable.step
async def many_tokens(count: int, pause: bool) -> int:
    for i in range(count):
        await durable.write_stream("tokens", i)
        if pause:
            await asyncio.sleep(0)  # as a client reading a model's response yields
    return count


@durable.workflow(name="streams.many")
async def many(ctx: durable.WorkflowContext, count: int, pause: bool) -> int:
    return await many_tokens(count, pause)


@pytest.mark.parametrize("pause", [False, True])
async def test_a_thousand_values_share_a_few_commits_and_precede_the_steps_end(
    db: Path, pause: bool
) -> None:
    async with durable.Runtime(db) as rt:
        before = commits(rt)
        handle = await rt.start(many, 1000, pause, run_id="m")
        assert await handle.result(timeout=30) == 1000
        assert commits(rt) - before <= 50  # the run's own writes included
        assert await read_all(rt, "m", "tokens") == list(range(1000))
        kinds = [e["kind"] for e in await rt.history("m")]
        assert kinds.index("step.completed") > len(kinds) - 1 - kinds[::-1].index("stream.value")


LATE: list[BaseException] = []
WRITERS: set[asyncio.Future[None]] = set()


async def _write_late(done: asyncio.Event) -> None:
    await done.wait()
    try:
        await durable.write_stream("out", "too late")
    except durable.DurableError as error:
        LATE.append(error)


@durable.step
async def leaves_a_writer(done: asyncio.Event) -> str:
    await durable.write_stream("out", "in time")
    asyncio.get_running_loop().call_later(0.01, done.set)
    WRITERS.add(asyncio.ensure_future(_write_late(done)))  # outlives the step's attempt
    return "returned"


async def test_a_value_written_after_its_steps_attempt_ended_is_refused(db: Path) -> None:
    LATE.clear()
    done = asyncio.Event()

    @durable.workflow(name="streams.late")
    async def late(ctx: durable.WorkflowContext) -> str:
        result = await leaves_a_writer(done)
        await ctx.wait_for_event("end")
        return result

    async with durable.Runtime(db) as rt:
        await rt.start(late, run_id="late")
        await until(late_error)
        assert "after step 'leaves_a_writer' (position 0) attempt 1 ended" in str(LATE[0])
        await rt.send_event("late", "end")
        await rt.handle("late").result(timeout=10)
        assert await read_all(rt, "late", "out") == ["in time"]


async def late_error() -> BaseException | None:
    return LATE[0] if LATE else None


async def test_streams_refuse_bad_keys_and_work_only_inside_runs(db: Path) -> None:
    with pytest.raises(durable.DurableError, match="outside a workflow"):
        await durable.write_stream("k", 1)

    @durable.workflow(name="streams.bad_key")
    async def bad_key(ctx: durable.WorkflowContext) -> str:
        try:
            await ctx.write_stream("", 1)
        except ValueError as error:
            return str(error)
        return "written"

    async with durable.Runtime(db) as rt:
        assert "non-empty string" in await (await rt.start(bad_key)).result(timeout=10)
        with pytest.raises(durable.RunNotFound):
            await read_all(rt, "nope", "k")
        with pytest.raises(TypeError, match="cursor"):
            rt.read_stream("nope", "k", after="3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="cursor"):
            rt.read_stream("nope", "k", after=-1)


async def test_durable_show_folds_a_stream_into_one_line_with_retracted_values_struck(
    db: Path,
) -> None:
    ATTEMPTS.clear()
    async with durable.Runtime(db) as rt:
        await (await rt.start(chatty_run, run_id="c")).result(timeout=10)
    shown = await asyncio.to_thread(cli, db, "show", "c")
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if "stream '" in line]
    assert len(lines) == 1, shown.stdout  # one line for the stream, not one per value
    assert lines[0].endswith(
        'stream \'log\': "try 2 begantry 2 done" ~~"try 1 began"~~ (2 value(s), 1 retracted)'
    )
