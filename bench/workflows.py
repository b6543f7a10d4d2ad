"""The workflows the benchmark runs (imported by bench/run.py and its child processes)."""

from __future__ import annotations

import asyncio
import os
import time

import durable

STARTED: list[int] = []


async def noop(i: int) -> int:
    return i


@durable.workflow(name="bench.sequential")
async def sequential(ctx: durable.WorkflowContext, steps: int) -> int:
    for i in range(steps):
        await ctx.step("noop", noop, i)
    return steps


@durable.workflow(name="bench.one_step")
async def one_step(ctx: durable.WorkflowContext) -> int:
    return await ctx.step("noop", noop, 1)


async def maybe_block(i: int) -> int:
    STARTED.append(i)
    if os.environ.get("DURABLE_BENCH_BLOCK"):
        await asyncio.Event().wait()
    return i


@durable.workflow(name="bench.interrupted")
async def interrupted(ctx: durable.WorkflowContext, i: int) -> int:
    await ctx.step("first", noop, i)
    return await ctx.step("blocking", maybe_block, i)


@durable.workflow(name="bench.sleeper")
async def sleeper(ctx: durable.WorkflowContext) -> None:
    await ctx.step("noop", noop, 1)
    await ctx.sleep(3600)


QUEUE = durable.Queue("bench.queue", concurrency=10)
STAMPS: dict[str, list[float]] = {"start": [], "end": []}


async def stamped(i: int) -> int:
    STAMPS["start"].append(time.perf_counter())
    STAMPS["end"].append(time.perf_counter())
    return i


@durable.workflow(name="bench.queued", queue=QUEUE)
async def queued(ctx: durable.WorkflowContext, i: int) -> int:
    return await ctx.step("stamped", stamped, i)


@durable.workflow(name="bench.unqueued")
async def unqueued(ctx: durable.WorkflowContext, i: int) -> int:
    return await ctx.step("noop", noop, i)


@durable.workflow(name="bench.streamer")
async def streamer(ctx: durable.WorkflowContext, count: int) -> int:
    for i in range(count):
        # The wall-clock moment of the write, for the reader's latency (a benchmark's
        # workflow may read the clock: nothing here is replayed).
        await ctx.write_stream("values", {"i": i, "written": time.time()})
    await ctx.close_stream("values")
    return count


@durable.step
async def stream_values(count: int, pace: float) -> int:
    """Values written inside a step (an LLM's tokens), ``pace`` seconds apart (0: at
    full speed), each with the wall-clock moment of its write for the reader's latency."""
    for i in range(count):
        await durable.write_stream("values", {"i": i, "written": time.time()})
        if pace:
            await asyncio.sleep(pace)
    return count


@durable.workflow(name="bench.step_streamer")
async def step_streamer(ctx: durable.WorkflowContext, count: int, pace: float) -> int:
    written = await stream_values(count, pace)
    await ctx.close_stream("values")
    return written


@durable.step
async def charged(i: int) -> int:
    durable.charge(usd=0.001, tokens=10)
    return i


@durable.workflow(name="bench.spender")
async def spender(ctx: durable.WorkflowContext, steps: int) -> int:
    for i in range(steps):
        await charged(i)
    return steps


@durable.workflow(name="bench.spending_parent", budget=durable.Budget(usd=1e9))
async def spending_parent(ctx: durable.WorkflowContext, steps: int) -> int:
    return await spender(steps)
