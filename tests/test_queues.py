"""Queues: concurrency, rate windows, priorities, dedup, cancel while queued, children."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import status_is, until

PAIR = durable.Queue("queues.pair", concurrency=2)
ONE = durable.Queue("queues.one", concurrency=1)
RATED = durable.Queue("queues.rated", rate=(2, 60.0))

ACTIVE: dict[str, int] = {}
PEAK: dict[str, int] = {}
ORDER: list[str] = []
GATES: dict[str, asyncio.Event] = {}
TWO_IN: dict[str, asyncio.Event] = {}
"""Per queue: set once two of its runs hold a slot at once."""


async def hold(queue: str, label: str) -> str:
    """A step that holds its run's slot until its gate opens (if it has one)."""
    ACTIVE[queue] = ACTIVE.get(queue, 0) + 1
    PEAK[queue] = max(PEAK.get(queue, 0), ACTIVE[queue])
    if ACTIVE[queue] == 2 and queue in TWO_IN:
        TWO_IN[queue].set()
    ORDER.append(label)
    try:
        gate = GATES.get(label)
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0.005)
    finally:
        ACTIVE[queue] -= 1
    return label


@durable.workflow(name="queues.pair_job", queue=PAIR)
async def pair_job(ctx: durable.WorkflowContext, label: str) -> str:
    return await ctx.step("hold", hold, "pair", label)


@durable.workflow(name="queues.one_job", queue=ONE)
async def one_job(ctx: durable.WorkflowContext, label: str) -> str:
    return await ctx.step("hold", hold, "one", label)


@durable.workflow(name="queues.plain")
async def plain(ctx: durable.WorkflowContext, label: str) -> str:
    return await ctx.step("hold", hold, "plain", label)


@durable.workflow(name="queues.rated_job", queue=RATED)
async def rated_job(ctx: durable.WorkflowContext, label: str) -> float:
    admitted = ctx.now().timestamp()
    await ctx.step("hold", hold, "rated", label)
    return admitted


@pytest.fixture(autouse=True)
def _fresh() -> None:
    ACTIVE.clear()
    PEAK.clear()
    ORDER.clear()
    GATES.clear()
    TWO_IN.clear()


async def test_a_queue_runs_no_more_than_its_concurrency_at_once(db: Path) -> None:
    """Two runs at once, never three: the first two hold their slots until both are in."""
    TWO_IN["pair"] = GATES["r0"] = GATES["r1"] = asyncio.Event()
    async with durable.Runtime(db) as rt:
        handles = [await rt.start(pair_job, f"r{i}") for i in range(8)]
        status = await rt.queue_status("queues.pair")
        assert status.running <= 2 and status.concurrency == 2
        assert [await h.result(timeout=10) for h in handles] == [f"r{i}" for i in range(8)]
        assert PEAK["pair"] == 2
        assert (await rt.queue_status(PAIR)).queued == 0
        assert (await rt.get_run(handles[0].run_id)).queue == "queues.pair"


async def test_results_awaited_of_queued_runs_are_not_all_read_again_at_each_end(
    db: Path,
) -> None:
    """Each run's end here wakes the result() waiting for it, not those of the runs
    still queued: 30 results awaited together cost about a read each, not one each
    per run ended before them (about 450)."""
    async with durable.Runtime(db) as rt:
        reads = 0
        get_run = rt.store.get_run

        async def counted(run_id: str) -> Any:
            nonlocal reads
            reads += 1
            return await get_run(run_id)

        rt.store.get_run = counted  # type: ignore[method-assign]
        handles = [await rt.start(one_job, f"r{i}") for i in range(30)]
        results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
        assert results == [f"r{i}" for i in range(30)]
        assert reads < 90


async def test_priority_first_then_first_come(db: Path) -> None:
    GATES["blocker"] = asyncio.Event()
    async with durable.Runtime(db) as rt:
        blocker = await rt.start(one_job, "blocker")
        await until(lambda: _returns(ORDER == ["blocker"]))
        for label, priority in [("late-5", 5), ("a-0", 0), ("b-5", 5), ("c-0", 0)]:
            await rt.start_run(one_job, [label], {}, priority=priority)
        assert (await rt.queue_status(ONE)).queued == 4
        GATES["blocker"].set()
        await blocker.result(timeout=10)
        await until(lambda: _returns(len(ORDER) == 5))
    assert ORDER == ["blocker", "a-0", "c-0", "late-5", "b-5"]


async def test_a_dedup_key_is_refused_while_queued_or_running_and_free_after(db: Path) -> None:
    GATES["first"] = asyncio.Event()
    async with durable.Runtime(db) as rt:
        first = await rt.start_run(one_job, ["first"], {}, dedup_key="order-7")
        await until(lambda: _returns(ORDER == ["first"]))  # running
        with pytest.raises(durable.DuplicateInQueue) as refused:
            await rt.start_run(one_job, ["again"], {}, dedup_key="order-7")
        assert refused.value.run_id == first.run_id and refused.value.code == "DUPLICATE_IN_QUEUE"
        queued = await rt.start_run(one_job, ["other"], {}, dedup_key="order-8")
        with pytest.raises(durable.DuplicateInQueue):  # while queued too
            await rt.start_run(one_job, ["again"], {}, dedup_key="order-8")
        # The same run started again by its id is the same run, not a duplicate.
        same = await rt.start_run(one_job, ["other"], {}, run_id=queued.run_id, dedup_key="order-8")
        assert same.run_id == queued.run_id
        GATES["first"].set()
        await first.result(timeout=10)
        await queued.result(timeout=10)
        again = await rt.start_run(one_job, ["again"], {}, dedup_key="order-7")
        assert await again.result(timeout=10) == "again"
        with pytest.raises(ValueError, match="needs a queue"):
            await rt.start_run(plain, ["x"], {}, dedup_key="k")


async def test_a_run_cancelled_while_queued_never_takes_a_slot(db: Path) -> None:
    GATES["blocker"] = asyncio.Event()
    async with durable.Runtime(db) as rt:
        blocker = await rt.start(one_job, "blocker")
        await until(lambda: _returns(ORDER == ["blocker"]))
        doomed = await rt.start(one_job, "doomed")
        after = await rt.start(one_job, "after")
        assert (await rt.get_run(doomed.run_id)).status is durable.RunStatus.QUEUED
        await rt.cancel(doomed.run_id)
        GATES["blocker"].set()
        assert await blocker.result(timeout=10) == "blocker"
        assert await after.result(timeout=10) == "after"
        with pytest.raises(durable.WorkflowCancelled):
            await doomed.result(timeout=5)
    assert ORDER == ["blocker", "after"]


async def test_a_rate_admits_no_more_than_n_in_any_window(db: Path) -> None:
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        start = clock.now()
        handles = [await rt.start(rated_job, f"r{i}") for i in range(5)]
        await until(lambda: _returns(len(ORDER) == 2))
        clock.advance(30)  # half a window: nothing more
        await asyncio.sleep(0.05)
        assert len(ORDER) == 2 and (await rt.queue_status(RATED)).queued == 3
        clock.advance(30)  # the first two leave the window: two more
        await until(lambda: _returns(len(ORDER) == 4))
        clock.advance(60)
        times = [await h.result(timeout=10) - start for h in handles]
    assert sorted(times) == [0.0, 0.0, 60.0, 60.0, 120.0]


async def test_a_queued_workflows_children_go_through_its_queue(db: Path) -> None:
    @durable.workflow(name="queues.fan_out")
    async def fan_out(ctx: durable.WorkflowContext) -> list[str]:
        return await ctx.parallel(*(one_job(f"kid{i}") for i in range(3)))

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(fan_out, run_id="f")).result(timeout=10) == [
            "kid0",
            "kid1",
            "kid2",
        ]
        assert PEAK["one"] == 1
        assert {child.queue for child in await rt.list_runs(parent="f")} == {"queues.one"}


async def test_a_client_queues_and_a_worker_admits(db: Path) -> None:
    async with durable.Runtime(db, recover=False) as client:
        handles = [await client.start(pair_job, f"c{i}") for i in range(4)]
        assert {(await client.get_run(h.run_id)).status for h in handles} == {
            durable.RunStatus.QUEUED
        }
        async with durable.Runtime(db):
            assert [await h.result(timeout=10) for h in handles] == ["c0", "c1", "c2", "c3"]
    assert PEAK["pair"] <= 2


def test_queue_limits_must_be_positive_whole_numbers() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="concurrency must be at least 1"):
            durable.Queue("queues.bad", concurrency=bad)
        with pytest.raises(ValueError, match="per_runtime must be at least 1"):
            durable.Queue("queues.bad", per_runtime=bad)
        with pytest.raises(ValueError, match="number of runs must be at least 1"):
            durable.Queue("queues.bad", rate=(bad, 1.0))
    for bad_type in (True, 1.5, "2"):
        with pytest.raises(TypeError, match="whole number"):
            durable.Queue("queues.bad", concurrency=bad_type)  # type: ignore[arg-type]
    for window in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="window must be a positive number of seconds"):
            durable.Queue("queues.bad", rate=(5, window))
    with pytest.raises(TypeError, match=r"rate must be \(runs, seconds\)"):
        durable.Queue("queues.bad", rate=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty string"):
        durable.Queue("")


def test_one_queue_name_declared_twice_with_other_limits_is_refused() -> None:
    assert durable.Queue("queues.pair", concurrency=2).limits == PAIR.limits  # the same: fine
    with pytest.raises(ValueError, match="declared twice with different limits"):
        durable.Queue("queues.pair", concurrency=3)


async def test_an_undeclared_queue_name_is_refused(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        with pytest.raises(ValueError, match="no queue named 'nope'"):
            await rt.start_run(plain, ["x"], {}, queue="nope")
        with pytest.raises(TypeError, match="priority"):
            await rt.start_run(one_job, ["x"], {}, priority="high")  # type: ignore[arg-type]
        for too_big in (2**31, -(2**31) - 1):  # PostgreSQL keeps a priority in 32 bits
            with pytest.raises(ValueError, match="priority must fit in 32 bits"):
                await rt.start_run(one_job, ["x"], {}, priority=too_big)
        assert await rt.list_runs() == []


async def _returns(value: Any) -> Any:
    return value


async def test_a_plain_workflow_may_be_sent_through_a_queue(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start_run(plain, ["p"], {}, queue=ONE)
        assert await handle.result(timeout=10) == "p"
        assert (await rt.get_run(handle.run_id)).queue == "queues.one"
        await status_is(rt, handle.run_id, "completed")


async def test_the_cli_lists_queues_with_their_counts_and_limits(db: Path) -> None:
    from . import child
    from .processes import cli

    async with durable.Runtime(db, recover=False) as client:
        for i in range(3):
            await client.start(child.slots, i)  # no worker: they stay queued
    bare = cli(db, "queues")
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.splitlines()[1].split() == ["child.slots", "3", "0", "-", "-", "-"]
    declared = cli(db, "queues", "tests.child", "--json")
    assert declared.returncode == 0, declared.stderr
    import json

    by_name = {q["name"]: q for q in json.loads(declared.stdout)}
    assert by_name["child.slots"] == {
        "name": "child.slots",
        "queued": 3,
        "running": 0,
        "concurrency": 2,
        "per_runtime": None,
        "rate": None,
    }
    assert by_name["child.limited"]["per_runtime"] == 1


async def test_a_resumed_run_of_a_queue_goes_through_it_again(db: Path) -> None:
    @durable.workflow(name="queues.flaky", queue=ONE)
    async def flaky(ctx: durable.WorkflowContext) -> str:
        value = await ctx.step("hold", hold, "one", "flaky")
        if len(ORDER) == 1:
            raise RuntimeError("first time")
        return value

    GATES["blocker"] = asyncio.Event()
    async with durable.Runtime(db) as rt:
        failed = await rt.start(flaky)
        with pytest.raises(durable.WorkflowFailed):
            await failed.result(timeout=10)
        blocker = await rt.start(one_job, "blocker")
        await until(lambda: _returns(ORDER == ["flaky", "blocker"]))
        await rt.resume(failed.run_id)
        assert (await rt.get_run(failed.run_id)).status is durable.RunStatus.QUEUED
        GATES["blocker"].set()
        await blocker.result(timeout=10)
        assert await rt.handle(failed.run_id).result(timeout=10) == "flaky"
    assert PEAK["one"] == 1
