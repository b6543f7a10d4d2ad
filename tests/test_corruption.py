"""A corrupt journal entry is contained: the run fails with CORRUPT_JOURNAL, whatever its
code catches, the error names the entry, and nothing is copied or rewritten."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable

from .helpers import status_is
from .journal_sql import execute, query


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
