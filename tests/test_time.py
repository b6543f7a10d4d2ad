"""Durable sleeps on the runtime's timers, with the virtual clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

import durable

from .helpers import status_is, timers_caught_up, until


@durable.workflow(name="time.nap")
async def nap(ctx: durable.WorkflowContext, seconds: float) -> float:
    start = ctx.now()
    await ctx.sleep(seconds)
    return (ctx.now() - start).total_seconds()


async def test_thirty_day_sleep_finishes_at_once_with_the_virtual_clock(db: Path) -> None:
    clock = durable.VirtualClock()
    async with durable.Runtime(db, clock=clock) as rt:
        slept = await (await rt.start(nap, 30 * 86400)).result(timeout=5)
    assert slept == 30 * 86400


async def test_status_is_sleeping_and_only_the_time_left_is_waited_after_restart(
    db: Path,
) -> None:
    clock = durable.VirtualClock(auto_skip=False)
    start = clock.now()
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(nap, 100.0, run_id="n")
        await status_is(rt, "n", "sleeping")
        clock.advance(30)
    async with durable.Runtime(db, clock=clock) as rt:

        async def parked() -> bool:
            return rt.timers.next_deadline() == start + 100

        await until(parked)
        clock.advance(69)
        await timers_caught_up(rt)
        assert rt.timers.next_deadline() == start + 100  # not fired: 1 s is left
        assert (await rt.get_run("n")).status is durable.RunStatus.SLEEPING
        clock.advance(1)
        assert await rt.handle("n").result(timeout=5) == 100.0


async def test_wake_up_that_passed_while_nothing_ran_resumes_on_open(db: Path) -> None:
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(nap, 60.0, run_id="n")
        await status_is(rt, "n", "sleeping")
    clock.advance(3600)
    async with durable.Runtime(db, clock=clock) as rt:
        assert await rt.handle("n").result(timeout=5) == 3600.0


async def test_sleep_forms(db: Path) -> None:
    @durable.workflow(name="time.forms")
    async def forms(ctx: durable.WorkflowContext) -> list[float]:
        t0 = ctx.now()
        await ctx.sleep(dt.timedelta(minutes=2))
        t1 = ctx.now()
        await ctx.sleep_until(t1 + dt.timedelta(hours=1))
        t2 = ctx.now()
        await ctx.sleep_until(t0)  # in the past: returns at once
        await ctx.sleep(0)
        t3 = ctx.now()
        return [(t1 - t0).total_seconds(), (t2 - t1).total_seconds(), (t3 - t2).total_seconds()]

    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        assert await (await rt.start(forms)).result(timeout=5) == [120, 3600, 0]


async def test_bad_sleep_arguments(db: Path) -> None:
    @durable.workflow(name="time.bad")
    async def bad(ctx: durable.WorkflowContext, which: str) -> None:
        if which == "naive":
            await ctx.sleep_until(dt.datetime(2030, 1, 1))
        else:
            await ctx.sleep(-1)

    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        with pytest.raises(durable.WorkflowFailed, match="timezone-aware"):
            await (await rt.start(bad, "naive")).result()
        with pytest.raises(durable.WorkflowFailed, match=">= 0"):
            await (await rt.start(bad, "negative")).result()


async def test_virtual_clock_moves_only_forward() -> None:
    clock = durable.VirtualClock(start=100)
    clock.advance(5)
    clock.set(50)
    assert clock.now() == 105
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    woken = asyncio.ensure_future(clock.sleep_until(110))
    await asyncio.sleep(0)
    assert not woken.done()
    clock.advance(5)
    await woken
