"""Replay keeps the order things happened in: journaled results come back in the order
they were journaled, so code that reacts to completion order takes the same path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import durable


async def pause(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@durable.workflow(name="order.first_completed")
async def first_completed(ctx: durable.WorkflowContext) -> list[str]:
    slow = asyncio.ensure_future(ctx.step("slow", pause, 0.3))
    fast = asyncio.ensure_future(ctx.step("fast", pause, 0.0))
    done, pending = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.wait(pending) if pending else None
    await ctx.sleep(60)  # parks: always_replay rebuilds the run from its journal here
    return sorted("fast" if task is fast else "slow" for task in done)


@durable.workflow(name="order.semaphore")
async def limited(ctx: durable.WorkflowContext) -> int:
    limit = asyncio.Semaphore(3)
    inside, peak = [0], [0]

    async def one(i: int) -> None:
        async with limit:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            try:
                await ctx.step(f"s{i}", pause, 0.05 * (3 - i % 3))
            finally:
                inside[0] -= 1

    await asyncio.gather(*(one(i) for i in range(6)))
    await ctx.sleep(60)
    return peak[0]


async def test_first_completed_takes_the_same_branch_on_replay(db: Path | str) -> None:
    async with durable.Runtime(db, always_replay=True, clock=durable.VirtualClock()) as rt:
        result = await (await rt.start(first_completed)).result(timeout=10)
    assert result == ["fast"]  # the replayed run saw the fast step end alone, as it ran


async def test_a_semaphore_around_steps_peaks_as_it_did(db: Path | str) -> None:
    async with durable.Runtime(db, always_replay=True, clock=durable.VirtualClock()) as rt:
        assert await (await rt.start(limited)).result(timeout=10) == 3
