"""``durable.current_context()`` and ``durable.in_step()``, and durable calls refused
inside a step's body."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import kinds

Seen = tuple[bool, bool]
"""What code saw: whether it had the run's context, and whether it was in a step."""


async def _nothing() -> None:
    return None


@durable.workflow(name="current.child")
async def child(ctx: durable.WorkflowContext) -> str:
    return "child"


def _sees(ctx: durable.WorkflowContext) -> Seen:
    return durable.current_context() is ctx, durable.in_step()


async def library_call(label: str) -> str:
    """What a library does that is not handed ``ctx``: find it, and make a step."""
    ctx = durable.current_context()
    assert ctx is not None
    return await ctx.step("library", lambda: f"{label} in {ctx.run_id}")


async def test_the_context_is_found_in_workflow_code_and_not_in_steps(db: Path) -> None:
    assert durable.current_context() is None and not durable.in_step()
    seen: dict[str, Any] = {}

    @durable.step(timeout=5)
    async def timed() -> None:
        seen["timed step"] = (durable.current_context(), durable.in_step())

    @durable.workflow(name="current.where")
    async def where(ctx: durable.WorkflowContext) -> str:
        seen["workflow"] = _sees(ctx)

        async def body() -> None:
            seen["async step"] = (durable.current_context(), durable.in_step())

            async def spawned() -> None:
                seen["task of a step"] = (durable.current_context(), durable.in_step())

            await asyncio.create_task(spawned())

        def sync_body() -> None:
            seen["sync step"] = (durable.current_context(), durable.in_step())

        async def awaited() -> None:
            seen["coroutine a lambda returns"] = (durable.current_context(), durable.in_step())

        await ctx.step("async", body)
        await ctx.step("lambda", lambda: awaited())
        await ctx.step("sync", sync_body)
        await timed()
        seen["workflow after steps"] = _sees(ctx)
        seen["task of the workflow"] = await asyncio.create_task(asyncio.to_thread(_sees, ctx))
        return await library_call("tool")

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(where, run_id="w")).result(timeout=10) == "tool in w"
        assert (2, "step.completed", "sync") in await kinds(rt, "w")
    assert durable.current_context() is None and not durable.in_step()
    assert seen == {
        "workflow": (True, False),
        "async step": (None, True),
        "task of a step": (None, True),
        "coroutine a lambda returns": (None, True),
        "sync step": (None, True),
        "timed step": (None, True),
        "workflow after steps": (True, False),
        "task of the workflow": (True, False),
    }


# Each durable call a captured ctx offers, as a step's body would make it.
CALLS: dict[str, Callable[[durable.WorkflowContext], Any]] = {
    "step": lambda ctx: ctx.step("inner", _nothing),
    "step of an awaitable": lambda ctx: ctx.step("inner", _nothing()),
    "sleep": lambda ctx: ctx.sleep(0),
    "sleep_until": lambda ctx: ctx.sleep_until(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
    "wait_for_user": lambda ctx: ctx.wait_for_user("ok?", timeout=0),
    "wait_for_event": lambda ctx: ctx.wait_for_event("go", timeout=0),
    "now": lambda ctx: ctx.now(),
    "uuid4": lambda ctx: ctx.uuid4(),
    "random": lambda ctx: ctx.random(),
    "start_child": lambda ctx: ctx.start_child(child),
    "send_event": lambda ctx: ctx.send_event("elsewhere", "go"),
    "state": lambda ctx: ctx.state.set("k", 1),
    "write_stream": lambda ctx: ctx.write_stream("s", 1),
    "close_stream": lambda ctx: ctx.close_stream("s"),
    "first": lambda ctx: ctx.first(ctx.sleep(0)),
    "patched": lambda ctx: ctx.patched("p"),
}


async def _refusal(call: Callable[[durable.WorkflowContext], Any], ctx: Any) -> str:
    try:
        made = call(ctx)
        if inspect.isawaitable(made):
            await made
    except durable.DurableError as exc:
        return str(exc)
    return "not refused"


@pytest.mark.parametrize("call", list(CALLS))
async def test_a_durable_call_inside_a_step_is_refused_and_not_journaled(
    db: Path, call: str
) -> None:
    @durable.workflow(name=f"current.refused.{call}")
    async def refused(ctx: durable.WorkflowContext) -> str:
        captured = ctx
        message = await ctx.step("outer", lambda: _refusal(CALLS[call], captured))
        await ctx.sleep(0)  # the workflow's next call takes the next position
        return message

    async with durable.Runtime(db) as rt:
        message = await (await rt.start(refused, run_id="r")).result(timeout=10)
        assert await kinds(rt, "r") == [
            (0, "step.started", "outer"),
            (0, "step.completed", "outer"),
            (1, "sleep.started", "sleep"),
        ]
    assert "inside the body of step 'outer'" in message
    assert "make it in the workflow" in message
    assert "(run 'r', position 0)" in message


async def test_a_refused_call_in_a_sync_step_fails_the_step_with_the_advice(db: Path) -> None:
    @durable.workflow(name="current.refused_sync")
    async def refused(ctx: durable.WorkflowContext) -> None:
        def body() -> None:
            ctx.now()  # in the step's worker thread

        await ctx.step("clock", body)

    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(refused, run_id="s")).result(timeout=10)
        assert await kinds(rt, "s") == [
            (0, "step.started", "clock"),
            (0, "step.failed", "clock"),
        ]
    assert "(value 'now')" in str(failed.value)
    assert "make it in the workflow" in str(failed.value)


async def test_workflow_code_running_beside_a_step_is_not_refused(db: Path) -> None:
    @durable.workflow(name="current.beside")
    async def beside(ctx: durable.WorkflowContext) -> list[object]:
        started, done = asyncio.Event(), asyncio.Event()

        async def slow() -> str:
            started.set()
            await done.wait()
            return "slow"

        async def meanwhile() -> bool:
            await started.wait()  # the step's body is running now, in another task
            made = await ctx.step("meanwhile", lambda: durable.in_step())
            done.set()
            return made and not durable.in_step()

        return await ctx.parallel(ctx.step("slow", slow), meanwhile())

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(beside, run_id="b")).result(timeout=10) == ["slow", True]
        assert [(p, name) for p, kind, name in await kinds(rt, "b") if kind == "step.started"] == [
            (0, "slow"),
            (1, "meanwhile"),
        ]
