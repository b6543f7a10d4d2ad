"""One bad run never stops the others: a run whose journal or row cannot be read fails
alone with CORRUPT_JOURNAL (when a runtime opens, takes runs over or wakes a run), the
others finish, and every listing still shows it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import durable

from .helpers import status_is
from .journal_sql import execute
from .processes import cli
from .test_server import serve

RUNS = ("a", "b", "c", "bad")


@durable.workflow(name="bad_runs.nap")
async def nap(ctx: durable.WorkflowContext, n: int) -> int:
    a = await ctx.step("a", lambda: n)
    b = await ctx.step("b", lambda: 2 * n)
    await ctx.sleep(0.5)
    return a + b


CORRUPTIONS = {
    # The start of the step at position 1 deleted: its completion has nothing before it.
    "missing": (
        "DELETE FROM events WHERE run_id = 'bad' AND position = 1 AND kind = 'step.started'",
        "position 1",
    ),
    "wake time": (
        'UPDATE events SET payload = \'{"wake_at": "soon"}\''
        " WHERE run_id = 'bad' AND kind = 'sleep.started'",
        "position 2",
    ),
    "shape": (
        "UPDATE events SET payload = '[2]' WHERE run_id = 'bad' AND kind = 'step.completed'"
        " AND position = 1",
        "position 1",
    ),
    "status": ("UPDATE runs SET status = 'hibernating' WHERE run_id = 'bad'", "hibernating"),
}


async def _park_all(rt: durable.Runtime) -> None:
    for n, run_id in enumerate(RUNS):
        await rt.start(nap, n, run_id=run_id)
    for run_id in RUNS:
        await status_is(rt, run_id, "sleeping")


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("path", ["open", "takeover"])
async def test_a_corrupt_run_fails_alone_and_the_others_finish(
    db: Path | str, corruption: str, path: str
) -> None:
    sql, where = CORRUPTIONS[corruption]
    rt = durable.Runtime(db)
    await rt.open()
    await _park_all(rt)
    if path == "open":  # its own runs, claimed again inside open()
        await rt.abandon()
        execute(db, sql)
        after = durable.Runtime(db, identity=rt.owner)
    else:  # free runs, taken over after open()
        await rt.close()
        execute(db, sql)
        after = durable.Runtime(db)
    async with after:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await after.handle("bad").result(timeout=10)
        assert failed.value.error["code"] == "CORRUPT_JOURNAL"
        assert "'bad'" in str(failed.value) and where in str(failed.value)
        for n, run_id in enumerate(RUNS[:3]):
            assert await after.handle(run_id).result(timeout=10) == 3 * n
        listed = {run.run_id: run for run in await after.list_runs()}
        assert listed["bad"].status is durable.RunStatus.FAILED
        report = await after.check()
        assert [run.run_id for run in report.corrupt_runs] == ["bad"]


async def test_a_corrupt_run_woken_from_unloaded_fails_alone(db: Path | str) -> None:
    async with durable.Runtime(db, max_in_memory_runs=1) as rt:
        await _park_all(rt)
        victim = sorted(rt.unloaded_runs)[0]
        execute(db, CORRUPTIONS["shape"][0].replace("'bad'", f"'{victim}'"))
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle(victim).result(timeout=10)
        assert failed.value.error["code"] == "CORRUPT_JOURNAL"
        assert f"{victim!r}" in str(failed.value) and "position 1" in str(failed.value)
        for n, run_id in enumerate(RUNS):
            if run_id != victim:
                assert await rt.handle(run_id).result(timeout=10) == 3 * n


async def test_a_gap_in_positions_is_replayed_not_refused(db: Path | str) -> None:
    """A call whose events are all missing (or that was never awaited) leaves a gap: the
    run is replayed, and the call made again, as after a crash before it was journaled."""
    async with durable.Runtime(db) as rt:
        await _park_all(rt)
    execute(db, "DELETE FROM events WHERE run_id = 'bad' AND position = 0")
    async with durable.Runtime(db) as rt:
        for n, run_id in enumerate(RUNS):
            assert await rt.handle(run_id).result(timeout=10) == 3 * n


def double(i: int) -> int:
    return 2 * i


@durable.workflow(name="bad_runs.catcher")
async def catcher(ctx: durable.WorkflowContext) -> list[object]:
    results: list[object] = []
    for i in range(4):
        try:
            results.append(await ctx.step(f"s{i}", double, i))
        except Exception as exc:
            results.append(f"caught {type(exc).__name__}")
    await ctx.wait_for_event("go")
    return results


@pytest.mark.parametrize("wrong", ['{"value": 2}', '"two"', "[2]", "null"])
async def test_a_wrong_shaped_entry_cannot_be_caught_by_the_workflow(
    db: Path | str, wrong: str
) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(catcher, run_id="w")
        await status_is(rt, "w", "waiting")
    sql = "UPDATE events SET payload = ? WHERE kind = 'step.completed' AND position = 1"
    execute(db, sql, (wrong,))
    # always_replay: the run is replayed at once, not left parked until its event comes.
    async with durable.Runtime(db, always_replay=True) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("w").result(timeout=10)
    assert failed.value.error["code"] == "CORRUPT_JOURNAL"
    assert "position 1" in str(failed.value) and "step.completed" in str(failed.value)


async def test_a_status_no_version_wrote_is_listed_as_it_is_until_claimed(
    db: Path | str,
) -> None:
    async with durable.Runtime(db) as rt:
        await _park_all(rt)
    execute(db, CORRUPTIONS["status"][0])
    async with durable.Runtime(db, recover=False) as client:
        runs = {run.run_id: run for run in await client.list_runs()}
        assert runs["bad"].status == "hibernating"
        assert not isinstance(runs["bad"].status, durable.RunStatus)
        assert runs["bad"].unreadable is not None and "hibernating" in runs["bad"].unreadable
        assert runs["bad"].to_dict()["status"] == "hibernating"
        assert [run.run_id for run in await client.list_runs(status="sleeping")] != []
        report = await client.check()
        assert [run.run_id for run in report.corrupt_runs] == ["bad"]
    listing = cli(db, "runs")
    assert listing.returncode == 0, listing.stderr
    assert "hibernating" in listing.stdout and "UNREADABLE" in listing.stdout
    checked = cli(db, "check")
    assert checked.returncode == 4 and "corrupt journal   bad" in checked.stdout
    found = json.loads(cli(db, "check", "--json").stdout)
    assert not found["ok"] and [run["run_id"] for run in found["corrupt_runs"]] == ["bad"]
    proc, url = serve(db)
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            answer = api.get("/api/runs")
            assert answer.status_code == 200, answer.text
            statuses = {run["run_id"]: run["status"] for run in answer.json()}
            assert statuses["bad"] == "hibernating"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("bad").result(timeout=10)
        assert failed.value.error["code"] == "CORRUPT_JOURNAL"
        assert "hibernating" in str(failed.value)
        for n, run_id in enumerate(RUNS[:3]):
            assert await rt.handle(run_id).result(timeout=10) == 3 * n
