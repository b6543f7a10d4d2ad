"""Bounded memory: runs beyond the cap are unloaded while they wait, and rebuilt on wake."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import weakref
from pathlib import Path

import pytest

import durable

from .helpers import status_is, until
from .journal_sql import execute

BODY_ENTRIES: dict[str, int] = {}


@durable.workflow(name="memory.nap_then_event")
async def nap_then_event(ctx: durable.WorkflowContext, index: int) -> int:
    BODY_ENTRIES[ctx.run_id] = BODY_ENTRIES.get(ctx.run_id, 0) + 1
    await ctx.step("before", str, index)
    await ctx.sleep(3600)
    payload = await ctx.wait_for_event("go")
    return int(payload) + index


async def test_runs_beyond_the_cap_are_unloaded_and_woken_by_timer_and_event(db: Path) -> None:
    BODY_ENTRIES.clear()
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock, max_in_memory_runs=3) as rt:
        handles = [await rt.start(nap_then_event, i, run_id=f"r{i}") for i in range(20)]

        async def all_sleeping() -> bool:
            runs = await rt.list_runs(status="sleeping")
            return len(runs) == 20 and len(rt.loaded_runs) <= 4

        await until(all_sleeping)
        unloaded = rt.unloaded_runs
        assert len(unloaded) >= 16

        clock.advance(3600)  # timers of unloaded runs wake them; they reload and wait

        async def all_waiting() -> bool:
            return len(await rt.list_runs(status="waiting")) == 20

        await until(all_waiting)
        await rt.cancel("r0")
        for i in range(1, 20):
            await rt.send_event(f"r{i}", "go", 100)
        results = [await handle.result(timeout=10) for handle in handles[1:]]
        with pytest.raises(durable.WorkflowCancelled):
            await handles[0].result(timeout=10)
    assert results == [100 + i for i in range(1, 20)]
    # every run that was unloaded was rebuilt by replay (its body entered again)
    assert {run for run in unloaded if BODY_ENTRIES[run] < 2} == set()
    assert len(rt.unloaded_runs) == 0


async def test_unloaded_runs_count_as_owned_by_this_runtime_in_check(db: Path) -> None:
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock, max_in_memory_runs=1) as rt:
        for i in range(5):
            await rt.start(nap_then_event, i)

        async def unloaded() -> bool:
            return len(rt.unloaded_runs) >= 3

        await until(unloaded)
        assert (await rt.check()).orphaned_runs == []


async def test_a_run_parked_in_its_journal_is_not_started_at_recovery(db: Path) -> None:
    """Recovery leaves a run the journal shows parked unloaded until a timer or event."""
    BODY_ENTRIES.clear()
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(nap_then_event, 2, run_id="waiter")
        await status_is(rt, "waiter", "sleeping")
        clock.advance(3600)
        await status_is(rt, "waiter", "waiting")
        await rt.start(nap_then_event, 1, run_id="napper")
        await status_is(rt, "napper", "sleeping")
    # As if it crashed mid-parking:
    execute(db, "UPDATE runs SET status = 'running' WHERE run_id = 'waiter'")
    entries = dict(BODY_ENTRIES)

    async with durable.Runtime(db, clock=clock) as rt:

        async def both_taken() -> bool:
            return len(rt.unloaded_runs) == 2

        await until(both_taken, timeout=5)
        assert rt.loaded_runs == set() and rt.unloaded_runs == {"napper", "waiter"}
        assert entries == BODY_ENTRIES  # neither workflow body ran again
        assert (await rt.get_run("waiter")).status is durable.RunStatus.WAITING
        await rt.send_event("waiter", "go", 40)  # an event wakes it
        assert await rt.handle("waiter").result(timeout=10) == 42
        clock.advance(1)  # nothing is due yet: the sleeper stays unloaded
        assert "napper" in rt.unloaded_runs
        clock.advance(3600)  # its timer wakes it; it replays and waits for its event

        async def napper_waits() -> bool:
            return (await rt.get_run("napper")).status is durable.RunStatus.WAITING

        await until(napper_waits)
        await rt.send_event("napper", "go", 10)
        assert await rt.handle("napper").result(timeout=10) == 11
    assert {"napper": entries["napper"] + 1, "waiter": entries["waiter"] + 1} == BODY_ENTRIES


async def test_a_parked_run_cancelled_as_it_is_claimed_is_let_go(sqlite_db: Path) -> None:
    """Recovery fixes the status of a run that crashed mid-parking; if the run was
    cancelled meanwhile, that write is refused, and recovery lets the run go and goes on."""
    db = sqlite_db  # SQLite's own: its file, its reader
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(nap_then_event, 1, run_id="napper")
        await status_is(rt, "napper", "sleeping")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE run_id = 'napper'")
        # Another process cancels the run the moment this runtime claims it.
        conn.execute(
            "CREATE TRIGGER cancel_on_claim AFTER UPDATE OF owner ON runs"
            " BEGIN UPDATE runs SET status = 'cancelled' WHERE run_id = NEW.run_id; END"
        )
        conn.commit()

    async with durable.Runtime(db, clock=clock) as rt:

        async def cancelled() -> bool:  # as the runtime claims it
            return (await rt.get_run("napper")).status is durable.RunStatus.CANCELLED

        async def let_go() -> bool:
            return rt.loaded_runs == set() and rt.unloaded_runs == set()

        await until(cancelled, timeout=5)
        await until(let_go, timeout=5)


async def test_a_finished_run_is_freed_without_the_cycle_collector(db: Path) -> None:
    """No reference cycle outlives a run, so its objects never pile up for full collections."""
    gc.collect()
    gc.disable()
    try:
        async with durable.Runtime(db) as rt:
            handle = await rt.start(nap_then_event, 1)
            run = weakref.ref(rt.residency.loaded[handle.run_id])
            await status_is(rt, handle.run_id, "sleeping")
            await rt.cancel(handle.run_id)

            async def freed() -> bool:
                return run() is None

            await until(freed)
    finally:
        gc.enable()


@durable.workflow(name="memory.long_then_wait")
async def long_then_wait(ctx: durable.WorkflowContext, steps: int) -> int:
    for i in range(steps):
        await ctx.step("noop", str, i)
    ctx.uuid4()
    await ctx.sleep(0)
    answer = await ctx.wait_for_event("go")
    return int(answer) + steps


async def test_a_running_run_holds_only_the_events_of_calls_in_progress(db: Path) -> None:
    """A run's memory does not grow with its history: events of durable calls that have
    returned are let go (a replay reads them from the journal)."""
    async with durable.Runtime(db) as rt:
        handle = await rt.start(long_then_wait, 50)
        await status_is(rt, handle.run_id, "waiting")
        journal = rt.residency.loaded[handle.run_id].journal
        assert [event.kind for events in journal.live.values() for event in events] == [
            "wait.started"
        ]
        await rt.send_event(handle.run_id, "go", 1)
        assert await handle.result() == 51
        # All of it journaled: the steps, the value, the sleep, the wait, its message.
        assert len(await rt.history(handle.run_id)) == 50 * 2 + 1 + 1 + 2 + 1


class _Captured:
    """Something a step's closure holds, to see whether it is freed."""


@durable.workflow(name="memory.closures")
async def closures(ctx: durable.WorkflowContext, i: int) -> int:
    captured = _Captured()
    CAPTURED.append(weakref.ref(captured))

    def body() -> int:
        return i if captured else -1

    async def async_body() -> int:
        return i if captured else -1

    return await ctx.step("sync", body) + await ctx.step("async", async_body)


CAPTURED: list[weakref.ref[_Captured]] = []


async def test_closures_passed_to_steps_are_freed_with_their_runs(sqlite_db: Path) -> None:
    CAPTURED.clear()
    async with durable.Runtime(sqlite_db, durability="normal") as rt:
        for i in range(50):
            assert await (await rt.start(closures, i)).result(timeout=10) == 2 * i
    gc.collect()
    assert sum(ref() is not None for ref in CAPTURED) == 0
