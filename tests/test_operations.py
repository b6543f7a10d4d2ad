"""Operating a journal: paging through runs, pruning old ones, and check's replay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import status_is


@durable.workflow(name="ops.quick")
async def quick(ctx: durable.WorkflowContext, n: int) -> int:
    return n


@durable.workflow(name="ops.parked")
async def parked(ctx: durable.WorkflowContext) -> None:
    await ctx.wait_for_event("never")


async def test_list_runs_pages_with_after_and_bounds_with_since_and_until(db: Path) -> None:
    clock = durable.VirtualClock(start=1_000.0)
    async with durable.Runtime(db, clock=clock) as rt:
        for n in range(5):
            await rt.start(quick, n, run_id=f"q{n}")
            clock.advance(10)
        seen: list[str] = []
        page = await rt.list_runs(limit=2)
        while page:
            seen += [run.run_id for run in page]
            page = await rt.list_runs(limit=2, after=page[-1].run_id)
        assert seen == ["q4", "q3", "q2", "q1", "q0"]
        moment = dt.datetime.fromtimestamp(1_010.0, dt.UTC)
        since = await rt.list_runs(since=moment, until=moment + dt.timedelta(seconds=20))
        assert [run.run_id for run in since] == ["q2", "q1"]
        with pytest.raises(durable.RunNotFound):
            await rt.list_runs(after="no-such-run")
        with pytest.raises(ValueError, match="aware datetime"):
            await rt.list_runs(since=dt.datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="the statuses are: pending, queued, running"):
            await rt.list_runs(status="done")


async def test_prune_deletes_old_finished_runs_in_batches_and_nothing_unfinished(
    db: Path,
) -> None:
    clock = durable.VirtualClock(start=1_000.0)
    async with durable.Runtime(db, clock=clock) as rt:
        for n in range(5):
            assert await rt.start(quick, n, run_id=f"old{n}") is not None
            await rt.handle(f"old{n}").result(timeout=10)
        await rt.start(parked, run_id="open")
        await status_is(rt, "open", "waiting")
        clock.advance(3600)
        await rt.start(quick, 9, run_id="recent")
        await rt.handle("recent").result(timeout=10)
        assert await rt.prune(dt.timedelta(minutes=30), batch=2) == 5
        left = sorted(run.run_id for run in await rt.list_runs())
        assert left == ["open", "recent"]
        assert await rt.history("open")  # its journal is whole
        clock.advance(1)
        assert await rt.prune(older_than=0) == 1  # "recent" ended; "open" never goes
        # A pruned run id is free again, with a fresh journal.
        assert await (await rt.start(quick, 7, run_id="old0")).result(timeout=10) == 7
        with pytest.raises(ValueError, match="older_than"):
            await rt.prune(float("nan"))


def _changing(step_name: str) -> durable.Workflow[[], None]:
    @durable.workflow(name="ops.changing")
    async def changing(ctx: durable.WorkflowContext) -> None:
        await ctx.step(step_name, str, 1)
        await ctx.wait_for_event("go")

    return changing


async def test_check_replays_parked_runs_and_names_those_the_code_no_longer_fits(
    db: Path,
) -> None:
    _changing("charge")
    async with durable.Runtime(db) as rt:
        await rt.start(_changing("charge"), run_id="parked-run")
        await status_is(rt, "parked-run", "waiting")
        assert (await rt.check()).diverged_runs == []
        _changing("bill")  # a deploy renamed the step
        report = await rt.check()
        (diverged,) = report.diverged_runs
        assert (diverged.run_id, diverged.status) == ("parked-run", "waiting")
        assert "'charge'" in diverged.error and "'bill'" in diverged.error
        data: dict[str, Any] = report.to_dict()
        assert data["ok"] is False and data["diverged_runs"][0]["run_id"] == "parked-run"
        # Nothing was written and nothing ran: the run still waits as it was.
        assert (await rt.get_run("parked-run")).status is durable.RunStatus.WAITING
    _changing("charge")


async def test_check_calls_orphaned_only_the_runs_of_a_dead_owner(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(parked, run_id="stopped-cleanly")
        await status_is(rt, "stopped-cleanly", "waiting")
    async with durable.Runtime(db, recover=False) as tool:
        assert (await tool.check()).orphaned_runs == []


def _ordering(variant: str) -> durable.Workflow[..., None]:
    """``ops.ordering`` as deployed: it takes an order id, then also a count, or it now
    fails on the step's result."""
    if variant == "takes-count":

        @durable.workflow(name="ops.ordering")
        async def ordering(ctx: durable.WorkflowContext, order: str, count: int) -> None:
            await ctx.step("reserve", str, order)
            await ctx.wait_for_event("go")

    else:

        @durable.workflow(name="ops.ordering")
        async def ordering(ctx: durable.WorkflowContext, order: str) -> None:
            reserved = await ctx.step("reserve", str, order)
            if variant == "raises":
                raise KeyError(reserved)
            await ctx.wait_for_event("go")

    return ordering


async def test_check_replays_every_unfinished_run_not_only_parked_ones(db: Path) -> None:
    """A pending run no runtime has started yet, and a run whose code now fails before
    its journal's end, are divergences a deploy must not go past."""
    _ordering("original")
    async with durable.Runtime(db) as rt:
        await rt.start(_ordering("original"), "o-1", run_id="parked-order")
        await status_is(rt, "parked-order", "waiting")
    async with durable.Runtime(db, recover=False) as tool:  # runs nothing: stays pending
        await tool.start(_ordering("original"), "o-2", run_id="pending-order")
        assert (await tool.get_run("pending-order")).status is durable.RunStatus.PENDING
        assert (await tool.check()).diverged_runs == []

        _ordering("takes-count")
        by_run = {run.run_id: run for run in (await tool.check()).diverged_runs}
        assert sorted(by_run) == ["parked-order", "pending-order"]
        pending = by_run["pending-order"]
        assert (pending.status, pending.position) == ("pending", 0)
        assert "missing a required argument: 'count'" in str(pending.received)

        _ordering("raises")
        (raising,) = (await tool.check()).diverged_runs
        assert (raising.run_id, raising.position) == ("parked-order", 1)
        assert raising.expected == "wait 'go'"
        assert raising.received == "the workflow raising KeyError: 'o-1'"
        assert (await tool.get_run("parked-order")).status is durable.RunStatus.WAITING
    _ordering("original")
