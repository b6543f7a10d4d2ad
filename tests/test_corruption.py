"""A corrupt journal entry is contained: the run fails with CORRUPT_JOURNAL, whatever its
code catches, the error names the entry, and nothing is copied or rewritten."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durable

from .helpers import status_is, until
from .journal_sql import execute, query
from .processes import cli


@durable.workflow(name="corruption.swallow")
async def swallow(ctx: durable.WorkflowContext) -> str:
    try:
        await ctx.step("b", lambda: 1)
    except Exception as exc:
        return f"fallback after {type(exc).__name__}"
    await ctx.wait_for_event("go")
    return "done"


@durable.workflow(name="corruption.listen")
async def listen(ctx: durable.WorkflowContext) -> object:
    return await ctx.wait_for_event("go")


def events(db: Path | str) -> list[tuple[object, ...]]:
    return query(db, "SELECT seq, position, kind, payload FROM events ORDER BY seq")


async def test_a_corrupt_entry_fails_the_run_even_when_the_workflow_catches_it(
    db: Path | str,
) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(swallow, run_id="s")
        await status_is(rt, "s", "waiting")
    execute(db, "UPDATE events SET payload = '{{{' WHERE kind = 'step.completed'")
    before = events(db)
    # always_replay: the run is replayed at once, not left parked until its event comes.
    async with durable.Runtime(db, always_replay=True) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("s").result(timeout=10)
    assert failed.value.error["code"] == "CORRUPT_JOURNAL"
    assert "position 0" in str(failed.value)
    assert events(db) == before  # untouched


async def test_a_corrupt_message_is_blamed_on_itself_and_never_copied(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(listen, run_id="l")
        await status_is(rt, "l", "waiting")
    async with durable.Runtime(db, recover=False) as client:
        await client.send_event("l", "go", {"n": 1})
    execute(db, "UPDATE events SET payload = '[[[' WHERE kind = 'message'")
    (message_seq,) = query(db, "SELECT seq FROM events WHERE kind = 'message'")[0]
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("l").result(timeout=10)
        assert failed.value.error["code"] == "CORRUPT_JOURNAL"
        assert f"event {message_seq}, message" in str(failed.value)
        assert [e[2] for e in events(db)] == ["wait.started", "message"]  # nothing copied
        execute(db, "UPDATE events SET payload = '{\"n\": 2}' WHERE kind = 'message'")
        await rt.resume("l")
        assert await rt.handle("l").result(timeout=10) == {"n": 2}


@durable.workflow(name="corruption.echo")
async def echo(ctx: durable.WorkflowContext, value: str) -> str:
    return await ctx.step("echo", lambda: value)


async def test_one_unreadable_row_does_not_hide_the_others(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        for name in ("a", "b", "c"):
            await (await rt.start(echo, name, run_id=name)).result(timeout=10)
    execute(db, "UPDATE run_inputs SET input = '[[[' WHERE run_id = 'b'")
    execute(db, "UPDATE events SET payload = '{{' WHERE run_id = 'c' AND kind = 'step.completed'")
    async with durable.Runtime(db, recover=False) as rt:
        runs = {run.run_id: run for run in await rt.list_runs()}
        assert set(runs) == {"a", "b", "c"}
        assert runs["a"].unreadable is None and runs["a"].input == {"args": ["a"], "kwargs": {}}
        broken = runs["b"].unreadable
        assert broken is not None and "'b'" in broken and "input" in broken
        assert "restore it from a backup" in broken and runs["b"].input is None
        with pytest.raises(durable.CorruptJournal, match=r"run 'b': its input.*correct the row"):
            await rt.export("b")
        with pytest.raises(durable.CorruptJournal, match=r"run 'c'.*event \d+, step.completed"):
            await rt.history("c")
    listing = cli(db, "runs")
    assert listing.returncode == 0 and "UNREADABLE" in listing.stdout
    assert all(name in listing.stdout for name in ("a", "b", "c"))
    shown = cli(db, "history", "c")
    assert shown.returncode != 0 and "'c'" in shown.stderr and "step.completed" in shown.stderr


@durable.workflow(name="corruption.slow")
async def slow(ctx: durable.WorkflowContext) -> int:
    for i in range(200):
        await ctx.step(f"s{i}", asyncio.sleep, 0.01)
    return 1


async def test_a_run_row_deleted_under_a_live_run_is_said_so_and_not_reused(
    db: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    async with durable.Runtime(db, durability="normal") as rt:
        await rt.start(slow, run_id="x")
        await until(lambda: _some_steps(rt))
        execute(db, "DELETE FROM runs WHERE run_id = 'x'")
        await until(lambda: _stopped(rt))
        assert any("was deleted from the journal" in r.getMessage() for r in caplog.records)
        assert not any("taken over" in r.getMessage() for r in caplog.records)
        with pytest.raises(durable.DurableError, match=r"journal events but no row.*events table"):
            await rt.start(slow, run_id="x")


async def _some_steps(rt: durable.Runtime) -> bool:
    return "x" in rt.loaded_runs and len(await rt.history("x")) >= 4


async def _stopped(rt: durable.Runtime) -> bool:
    return "x" not in rt.loaded_runs
