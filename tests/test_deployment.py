"""Exactly once wherever it is deployed: workers in other pid namespaces, workers opened
together, callers that give up on a start. Real worker processes on one journal."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import durable

from . import child as child_program
from .helpers import until
from .journal_sql import query
from .processes import finish, lines, spawn_worker, wait_ready

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
"""A new pid namespace with its own /proc, on the same host name: as a container with
host networking, or a replica given the same ``hostname:``, sees the machine."""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run([*UNSHARE, "true"], capture_output=True).returncode == 0


async def _start_paced(db: Path | str, runs: int, steps: int) -> None:
    async with durable.Runtime(db, recover=False) as client:
        for i in range(runs):
            await client.start(child_program.paced, steps, run_id=f"paced-{i}")


def _wait_all_completed(db: Path | str, runs: int, timeout: float) -> None:
    async def all_done() -> bool:
        async with durable.Runtime(db, recover=False) as client:
            done = await client.list_runs(status="completed", limit=1000)
        return len(done) == runs

    asyncio.run(until(all_done, timeout=timeout))


def _stop(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        # A worker under unshare leads a process group of its own (unshare itself does
        # not pass SIGTERM on): the group is signalled, so the worker in it stops cleanly.
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        finish(worker)  # type: ignore[arg-type]


def _step_begins(effects: Path) -> Counter[tuple[str, str]]:
    begins = [line.split() for line in lines(effects) if line.startswith("begin paced-")]
    return Counter((fields[1], fields[2]) for fields in begins)


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare --pid (root): CI runs as root")
def test_live_workers_in_two_pid_namespaces_never_run_a_step_twice(
    db: Path | str, tmp_path: Path
) -> None:
    """The second worker sees the first's pid missing from its own /proc: it must not
    take that live worker's runs for a dead one's."""
    effects = tmp_path / "effects.log"
    child_program.EFFECTS = str(effects)
    workers = [spawn_worker(db, effects), spawn_worker(db, effects, prefix=UNSHARE)]
    try:
        asyncio.run(_start_paced(db, 40, 20))
        _wait_all_completed(db, 40, timeout=120)
    finally:
        _stop(workers)
    begins = _step_begins(effects)
    assert len(begins) == 40 * 20 and set(begins.values()) == {1}  # each step ran once
    completions = query(
        db,
        "SELECT run_id, position, count(*) FROM events WHERE kind = 'step.completed'"
        " GROUP BY run_id, position HAVING count(*) > 1",
    )
    assert completions == []


def test_workers_opened_together_share_the_waiting_runs(db: Path | str, tmp_path: Path) -> None:
    """Runs waiting before any worker opens: none of the workers opened in the same
    moment takes more than its share, however they are scheduled."""
    effects = tmp_path / "effects.log"
    child_program.EFFECTS = str(effects)
    count = 3 if str(db).startswith("postgresql") else 2
    runs = 100 * count
    asyncio.run(_start_paced(db, runs, 3))
    open_at = str(time.time() + 3.0)  # every worker has started up by then
    workers = [
        spawn_worker(db, effects, wait=False, DURABLE_TEST_OPEN_AT=open_at) for _ in range(count)
    ]
    try:
        for worker in workers:  # all opened before the test loads the machine with polls
            wait_ready(worker)
        _wait_all_completed(db, runs, timeout=120)
    finally:
        _stop(workers)
    begins = [line.split() for line in lines(effects) if line.startswith("begin paced-")]
    assert len(begins) == runs * 3  # each step once
    per_worker = Counter(fields[3] for fields in begins if fields[2] == "0")
    assert sum(per_worker.values()) == runs and len(per_worker) == count
    assert max(per_worker.values()) <= 110, per_worker  # a share is 100


@durable.workflow(name="deployment.quick")
async def quick(ctx: durable.WorkflowContext, n: int) -> int:
    return await ctx.step("double", _double, n)


async def _double(n: int) -> int:
    return n * 2


@pytest.mark.parametrize("named", [True, False], ids=["run_id", "fresh_id"])
async def test_a_start_its_caller_gives_up_on_leaves_no_run_or_one_that_executes(
    db: Path | str, named: bool
) -> None:
    async with durable.Runtime(db) as rt:
        for i in range(20):
            run_id = f"given-up-{i}" if named else None
            task = asyncio.create_task(rt.start(quick, i, run_id=run_id))
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # A start behind them: what the given-up starts wrote is committed by its end.
        assert await (await rt.start(quick, 100, run_id="behind")).result(timeout=10) == 200
        runs = await rt.list_runs(workflow="deployment.quick", limit=1000)
        runs = [info for info in runs if info.run_id != "behind"]
        for info in runs:
            assert await rt.handle(info.run_id).result(timeout=10) == 2 * info.input["args"][0]
        for info in runs:
            assert (await rt.get_run(info.run_id)).status is durable.RunStatus.COMPLETED
        if named:
            assert len(runs) >= 15  # most starts were written before the caller gave up


@durable.workflow(name="deployment.waits")
async def waits_for_go(ctx: durable.WorkflowContext) -> str:
    return str(await ctx.wait_for_event("go"))


async def test_a_client_that_runs_nothing_is_nobodys_peer(db: Path | str) -> None:
    """A long-lived client (recover=False) holds no lease, so a worker's share of the
    free runs is all of them, not half."""
    async with (
        durable.Runtime(db, recover=False, lease_seconds=0.3, poll_interval=0.05) as client,
        durable.Runtime(db, identity="worker", lease_seconds=0.3, poll_interval=0.05) as worker,
    ):
        # Long enough for the client to have renewed a lease three times, were it to hold
        # one (the worker's share would then be half); the assertions wait for no time.
        await asyncio.sleep(0.3)
        for i in range(10):
            await client.start(waits_for_go, run_id=f"w{i}")

        async def all_taken() -> bool:
            owners = query(db, "SELECT owner FROM runs WHERE run_id LIKE 'w%'")
            held = worker.loaded_runs | worker.unloaded_runs
            return owners == [("worker",)] * 10 and held == {f"w{i}" for i in range(10)}

        await until(all_taken, timeout=10)
        assert "worker" in {row[0] for row in query(db, "SELECT owner FROM owners")}


@durable.workflow(name="deployment.other_service")
async def other_service(ctx: durable.WorkflowContext) -> str:
    return str(await ctx.wait_for_event("go"))


async def test_runtimes_of_other_workflows_are_not_peers(db: Path | str) -> None:
    """Two services on one database: a runtime takes all the free runs of its own
    workflows, whatever another service's runtimes hold."""
    async with (
        durable.Runtime(db, identity="a", workflows=[waits_for_go], poll_interval=0.05) as a,
        durable.Runtime(db, identity="b", workflows=[other_service], poll_interval=0.05),
        durable.Runtime(db, recover=False) as client,
    ):
        for i in range(10):
            await client.start(waits_for_go, run_id=f"a{i}")

        async def all_taken() -> bool:
            owners = query(db, "SELECT owner FROM runs WHERE run_id LIKE 'a%'")
            held = a.loaded_runs | a.unloaded_runs
            return owners == [("a",)] * 10 and held == {f"a{i}" for i in range(10)}

        await until(all_taken, timeout=10)
