"""Streams: written once by workflows and steps, read live from another runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import status_is

CALLS: list[str] = []


@durable.workflow(name="streams.progress")
async def progress(ctx: durable.WorkflowContext) -> str:
    await ctx.write_stream("progress", {"done": 1})
    await ctx.wait_for_event("more")
    await ctx.write_stream("progress", {"done": 2})
    await ctx.close_stream("progress")
    await ctx.wait_for_event("end")
    return "ok"


async def read_all(rt: durable.Runtime, run_id: str, key: str) -> list[Any]:
    return [value async for value in rt.read_stream(run_id, key)]


async def test_a_stream_is_read_live_from_another_runtime_until_closed(db: Path) -> None:
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as reader:
        await rt.start(progress, run_id="p")
        stream = reader.read_stream("p", "progress")
        assert await asyncio.wait_for(anext(stream), 10) == {"done": 1}
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing more yet: the reader waits, live
        await reader.send_event("p", "more")
        assert await asyncio.wait_for(waiting, 10) == {"done": 2}
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
        assert await asyncio.wait_for(anext(rt.read_stream("l", "answer")), 10) == "the"
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


async def test_values_written_in_a_step_are_tagged_with_their_attempt(db: Path) -> None:
    ATTEMPTS.clear()
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(chatty_run, run_id="c")).result(timeout=10) == "ok"
        assert await read_all(rt, "c", "log") == ["try 1 began", "try 2 began", "try 2 done"]
        tagged = [e["payload"] for e in await rt.history("c") if e["kind"] == "stream.value"]
        assert [(p["step"], p["attempt"]) for p in tagged] == [
            ("chatty", 1),
            ("chatty", 2),
            ("chatty", 2),
        ]
    assert ATTEMPTS == [1, 2]


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
