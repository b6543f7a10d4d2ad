"""Leases: two processes on one file never run the same run at the same time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from pathlib import Path

import durable
from durable.journal.records import RunRecord
from durable.store.sqlite.store import SqliteStore

from . import child as child_program
from .helpers import status_is, until
from .journal_sql import execute, query
from .processes import (
    finish,
    kill_mid_step,
    lines,
    spawn,
    spawn_worker,
    wait_for_line,
    wait_for_status,
)


def lease_of(db: Path | str, run_id: str) -> tuple[str, float]:
    ((owner, lease),) = query(
        db,
        "SELECT runs.owner, owners.lease_until FROM runs LEFT JOIN owners USING (owner)"
        " WHERE run_id = ?",
        (run_id,),
    )
    return owner, lease


def renewed_lease(db: Path | str, owner: str) -> float:
    """``owner``'s lease expiry as the journal has it now (it moves at each renewal)."""
    ((lease,),) = query(db, "SELECT lease_until FROM owners WHERE owner = ?", (owner,))
    return float(lease)


def field(line: str, name: str) -> str:
    return next(part.split("=", 1)[1] for part in line.split() if part.startswith(f"{name}="))


def test_two_live_workers_run_each_run_in_one_process_only(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    workers = [spawn_worker(db, effects) for _ in range(2)]

    async def client() -> list[list[str]]:
        async with durable.Runtime(db, recover=False) as rt:
            handles = [await rt.start(child_program.three_steps, run_id=f"r{i}") for i in range(30)]
            return [await handle.result(timeout=30) for handle in handles]

    results = asyncio.run(client())
    assert results == [["first-done", "second-done", "third-done"]] * 30
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=20)
    starts = [line for line in lines(effects) if line.startswith("start")]
    assert len(starts) == 90  # every step ran exactly once
    pids_by_run: dict[str, set[str]] = {}
    for line in starts:
        pids_by_run.setdefault(field(line, "run"), set()).add(field(line, "pid"))
    assert all(len(pids) == 1 for pids in pids_by_run.values())


def test_a_crashed_owner_is_taken_over_only_after_its_lease_expires(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    kill_mid_step(db, effects, "second", DURABLE_IDENTITY="worker-a", DURABLE_LEASE="1.5")
    owner, lease_until = lease_of(db, "run-three_steps")
    assert owner == "worker-a"

    finish(
        spawn(
            str(db), "three_steps", str(effects), DURABLE_IDENTITY="worker-b", DURABLE_LEASE="1.5"
        )
    )
    taken_over = float(field(wait_for_line(effects, "start second 2"), "at"))
    assert taken_over >= lease_until
    assert lines(effects)[-1].startswith("result ['first-done', 'second-done', 'third-done']")


def test_the_same_identity_takes_its_runs_back_at_once(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    kill_mid_step(db, effects, "second", DURABLE_IDENTITY="worker-a", DURABLE_LEASE="60")
    _, lease_until = lease_of(db, "run-three_steps")

    finish(spawn(str(db), "three_steps", str(effects), DURABLE_IDENTITY="worker-a"))
    resumed = float(field(wait_for_line(effects, "start second 2"), "at"))
    assert resumed < lease_until - 30  # did not wait for the 60 s lease


def test_a_stalled_owner_that_lost_its_lease_writes_nothing_more(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    stalled = spawn(
        str(db),
        "three_steps",
        str(effects),
        SLOW="second",
        DURABLE_IDENTITY="worker-a",
        DURABLE_LEASE="1",
    )
    wait_for_line(effects, "start second 1", stalled)
    stalled.send_signal(signal.SIGSTOP)
    try:
        finish(
            spawn(
                str(db), "three_steps", str(effects), DURABLE_IDENTITY="worker-b", DURABLE_LEASE="1"
            )
        )
    finally:
        stalled.send_signal(signal.SIGCONT)
    finish(stalled)  # wakes up, finishes its slow step body, finds the run taken over

    ends = [line for line in lines(effects) if line.startswith("end second")]
    assert len(ends) == 2  # both bodies ran to their end...
    ((completions,),) = query(
        db, "SELECT count(*) FROM events WHERE position = 1 AND kind = 'step.completed'"
    )
    ((owner,),) = query(db, "SELECT owner FROM runs")
    assert completions == 1  # ...but only the new owner's end was journaled
    assert owner == "worker-b"
    results = [line for line in lines(effects) if line.startswith("result")]
    assert len(results) == 2 and len(set(r.split(" at ")[0] for r in results)) == 1


def test_a_live_owner_keeps_its_runs(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    owner = spawn(
        str(db),
        "three_steps",
        str(effects),
        block="second",
        DURABLE_IDENTITY="worker-a",
        DURABLE_LEASE="0.5",
    )
    wait_for_line(effects, "start second 1", owner)
    wait_for_status(db, "running")
    other = spawn(
        str(db), "approval", str(effects), DURABLE_IDENTITY="worker-b", DURABLE_LEASE="0.5"
    )
    wait_for_status(db, "waiting", "run-approval")
    # Not a span of wall clock but seen progress: worker-b renews its lease (and claims
    # what is free right after) every third of a lease; six renewals seen are two whole
    # lease periods of the owner's in which b looked for free runs.
    renewals = {renewed_lease(db, "worker-b")}
    give_up = time.monotonic() + 30
    while len(renewals) < 7:
        assert time.monotonic() < give_up, f"worker-b renewed only {len(renewals)} times"
        assert not any(line.startswith("start second 2") for line in lines(effects))
        renewals.add(renewed_lease(db, "worker-b"))
        time.sleep(0.02)
    assert lease_of(db, "run-three_steps")[0] == "worker-a"
    other.kill()
    owner.kill()


async def test_a_runtime_writes_nothing_to_a_run_taken_over_behind_its_back(db: Path) -> None:
    @durable.workflow(name="leases.parked")
    async def parked(ctx: durable.WorkflowContext) -> str:
        value = await ctx.wait_for_event("go")
        return str(value)

    async with durable.Runtime(db, identity="worker-a") as rt:
        await rt.start(parked, run_id="p")
        await status_is(rt, "p", "waiting")
        execute(db, "UPDATE runs SET owner = 'worker-b' WHERE run_id = 'p'")
        execute(db, "INSERT INTO owners (owner, lease_until) VALUES ('worker-b', 1e12)")  # live
        before = await rt.history("p")
        await rt.send_event("p", "go", 1)  # wakes the run; its next write must be refused

        async def dropped() -> bool:
            return "p" not in rt.loaded_runs

        await until(dropped)
        after = await rt.history("p")
        run = await rt.get_run("p")
    assert [e["kind"] for e in after[len(before) :]] == ["message"]  # the event, nothing else
    assert run.status is durable.RunStatus.WAITING and run.output is None
    assert lease_of(db, "p")[0] == "worker-b"


def _run_row(run_id: str, owner: str | None) -> RunRecord:
    return RunRecord(run_id, "wf", "1", "sleeping", "{}", "d", None, None, owner, None, 0.0, 0.0)


async def test_a_lease_is_one_row_per_runtime_and_renewing_it_rewrites_no_run(
    sqlite_db: Path,
) -> None:
    db = sqlite_db
    store = SqliteStore(db, "normal")
    await store.open()
    try:
        for i in range(200):
            await store.create_run(_run_row(f"r{i}", "me"))
        mine = await store.claim("me", 100.0, 50.0, limit=1000, include_own=False)
        assert mine == []  # it holds them all already: the claim only took its lease
        with contextlib.closing(sqlite3.connect(db)) as conn:
            before = conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        assert await store.renew("me", 110.0, 60.0) is None  # never lapsed: nothing to check
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall() == before
            leases = conn.execute("SELECT owner, lease_until FROM owners").fetchall()
            assert leases == [("me", 110.0)]
        # Another runtime cannot take runs under a live lease, and takes them once it lapses.
        assert await store.claim("other", 200.0, 105.0, limit=1000) == []
        taken = await store.claim("other", 200.0, 111.0, limit=1000, run_ids=["r7"])
        assert [run.run_id for run in taken] == ["r7"]
        # The lapsed runtime learns, on renewing, which runs it still holds.
        held = await store.renew("me", 130.0, 120.0)
        assert held is not None and "r7" not in held and len(held) == 199
        record = await store.get_run("r8")
        assert record is not None and (record.owner, record.lease_until) == ("me", 130.0)
    finally:
        await store.close()


async def test_a_closed_runtime_gives_its_runs_up_at_once(db: Path) -> None:
    @durable.workflow(name="leases.napper")
    async def napper(ctx: durable.WorkflowContext) -> str:
        await ctx.sleep(3600)
        return "rested"

    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, identity="a", lease_seconds=600, clock=clock) as rt:
        await rt.start(napper, run_id="n")
        await status_is(rt, "n", "sleeping")
    assert query(db, "SELECT owner FROM owners") == []  # one row deleted
    async with durable.Runtime(db, identity="b", lease_seconds=600, clock=clock) as rt:

        async def taken() -> bool:  # as it opens, without waiting for a's lease
            return "n" in rt.unloaded_runs

        await until(taken, timeout=5)
        clock.advance(3600)
        assert await rt.handle("n").result(timeout=10) == "rested"
    assert lease_of(db, "n")[0] == "b"
