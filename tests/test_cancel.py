"""Cancellation: at the current await, recorded in the journal, never resumed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durable

from .helpers import status_is, until

SEEN: list[str] = []


@durable.workflow(name="cancel.sleepy")
async def sleepy(ctx: durable.WorkflowContext) -> str:
    try:
        await ctx.sleep(3600)
    except asyncio.CancelledError:
        SEEN.append("cancelled at sleep")
        raise
    return "woke"


async def test_cancel_a_sleeping_run(db: Path) -> None:
    SEEN.clear()
    async with durable.Runtime(db) as rt:
        handle = await rt.start(sleepy, run_id="s")
        await status_is(rt, "s", "sleeping")
        await handle.cancel()
        with pytest.raises(durable.WorkflowCancelled) as cancelled:
            await handle.result(timeout=5)
        assert cancelled.value.run_id == "s"
        assert await handle.status() is durable.RunStatus.CANCELLED
        assert (await rt.history("s"))[-1]["kind"] == "run.cancel"
    assert SEEN == ["cancelled at sleep"]
    async with durable.Runtime(db) as rt:
        assert "s" not in rt.loaded_runs
        assert (await rt.get_run("s")).status is durable.RunStatus.CANCELLED


async def test_cancel_a_run_inside_an_async_step(db: Path) -> None:
    started = asyncio.Event()
    outcome: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("step cancelled")
            raise

    @durable.workflow(name="cancel.stepping")
    async def stepping(ctx: durable.WorkflowContext) -> None:
        await ctx.step("forever", forever)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(stepping, run_id="x")
        await started.wait()
        await rt.cancel("x")
        with pytest.raises(durable.WorkflowCancelled):
            await handle.result(timeout=5)
    assert outcome == ["step cancelled"]


async def test_cancel_a_waiting_run_that_no_runtime_is_running(db: Path) -> None:
    @durable.workflow(name="cancel.waiting")
    async def waiting(ctx: durable.WorkflowContext) -> None:
        await ctx.wait_for_user("Anyone?")

    async with durable.Runtime(db) as rt:
        await rt.start(waiting, run_id="w")
        await status_is(rt, "w", "waiting")
    async with durable.Runtime(db, recover=False) as tool:
        await tool.cancel("w")
        assert await tool.pending_waits() == []
    async with durable.Runtime(db) as rt:
        assert "w" not in rt.loaded_runs
        with pytest.raises(durable.WorkflowCancelled):
            await rt.handle("w").result(timeout=5)


async def test_cancel_from_another_runtime_reaches_the_live_one(db: Path) -> None:
    SEEN.clear()
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as other:
        handle = await rt.start(sleepy, run_id="s")
        await status_is(rt, "s", "sleeping")
        await other.cancel("s")
        with pytest.raises(durable.WorkflowCancelled):
            await handle.result(timeout=5)

        async def gone() -> bool:
            return "s" not in rt.loaded_runs

        await until(gone, timeout=2)
    assert SEEN == ["cancelled at sleep"]


async def test_cancelling_a_finished_run_changes_nothing(db: Path) -> None:
    @durable.workflow(name="cancel.quick")
    async def quick(ctx: durable.WorkflowContext) -> int:
        return 1

    async with durable.Runtime(db) as rt:
        handle = await rt.start(quick, run_id="q")
        assert await handle.result() == 1
        with pytest.raises(durable.DurableError, match="already ended completed"):
            await rt.cancel("q")
        assert (await rt.get_run("q")).status is durable.RunStatus.COMPLETED
        assert await rt.history("q") == []
        with pytest.raises(durable.RunNotFound):
            await rt.cancel("nope")


OTHER: list[durable.Runtime] = []


async def cancel_me_from_elsewhere() -> str:
    """A step body that has another runtime cancel its own run, then returns."""
    await OTHER[0].cancel(durable.step_info().run_id)
    return "done anyway"


@durable.workflow(name="cancel.at_the_end")
async def cancelled_at_the_end(ctx: durable.WorkflowContext) -> str:
    return await ctx.step("cancel_me", cancel_me_from_elsewhere)


async def test_a_run_cancelled_elsewhere_as_it_completes_reports_cancelled(db: Path) -> None:
    """The run's end write finds the run cancelled by another process: nothing is written,
    and the result says cancelled, as the journal does (it used to return the output)."""
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as other:
        OTHER[:] = [other]
        handle = await rt.start(cancelled_at_the_end, run_id="c")
        with pytest.raises(durable.WorkflowCancelled):
            await handle.result(timeout=5)
        assert (await rt.get_run("c")).status is durable.RunStatus.CANCELLED
        kinds = [event["kind"] for event in await rt.history("c")]
    OTHER.clear()
    assert kinds == ["step.started", "run.cancel"]  # the step's result came too late
