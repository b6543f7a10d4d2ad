"""Runtime: start and idempotency, reading runs, failures, shutdown, bad input."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sqlite3
import stat
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import durable
from durable._base.ids import new_run_id
from durable.store.sqlite.store import SqliteStore
from durable.testing import crash, scoped_workflows

from .helpers import Read, route_sqlite_reads, status_is, until


@durable.workflow(name="runtime.greet")
async def greet(ctx: durable.WorkflowContext, name: str, punctuation: str = "!") -> str:
    return await ctx.step("shout", str.upper, f"hello {name}{punctuation}")


@durable.workflow(name="runtime.boom")
async def boom(ctx: durable.WorkflowContext) -> None:
    raise ValueError("bad order")


@durable.workflow(name="runtime.parked")
async def parked(ctx: durable.WorkflowContext) -> str:
    return str(await ctx.wait_for_event("go"))


async def test_same_run_id_and_input_returns_the_existing_run(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        first = await rt.start(greet, "ada", run_id="g-1")
        assert await first.result() == "HELLO ADA!"
        again = await rt.start(greet, "ada", run_id="g-1")
        assert await again.result() == "HELLO ADA!"
        assert len(await rt.list_runs()) == 1


async def test_same_run_id_with_other_input_is_refused_untouched(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await (await rt.start(greet, "ada", run_id="g-1")).result()
        before = await rt.history("g-1")
        with pytest.raises(durable.IdempotencyKeyMismatch) as mismatch:
            await rt.start(greet, "bob", run_id="g-1")
        with pytest.raises(durable.IdempotencyKeyMismatch):
            await rt.start(boom, run_id="g-1")
        assert mismatch.value.run_id == "g-1"
        assert mismatch.value.expected != mismatch.value.received
        assert len(mismatch.value.expected) == 64
        assert await rt.history("g-1") == before
        assert (await rt.get_run("g-1")).input == {"args": ["ada"], "kwargs": {}}


async def test_get_run_list_runs_and_history(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await (await rt.start(greet, "ada", punctuation="?", run_id="a")).result()
        with pytest.raises(durable.WorkflowFailed):
            await (await rt.start(boom, run_id="b")).result()
        info = await rt.get_run("a")
        assert info.status is durable.RunStatus.COMPLETED
        assert (info.workflow, info.version, info.output) == ("runtime.greet", "1", "HELLO ADA?")
        assert info.input == {"args": ["ada"], "kwargs": {"punctuation": "?"}}
        assert info.created_at <= info.updated_at
        assert [r.run_id for r in await rt.list_runs(status="failed")] == ["b"]
        assert [r.run_id for r in await rt.list_runs(workflow="runtime.greet")] == ["a"]
        assert len(await rt.list_runs(limit=1)) == 1
        history = await rt.history("a")
        assert [e["kind"] for e in history] == ["step.started", "step.completed"]
        assert history[1]["payload"] == {"result": "HELLO ADA?"}
        with pytest.raises(durable.RunNotFound):
            await rt.get_run("nope")
        with pytest.raises(durable.RunNotFound):
            await rt.history("nope")


async def test_failed_workflow_stores_code_type_message(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(boom, run_id="b")
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result()
        assert failed.value.run_id == "b"
        error = {"code": "UNHANDLED_EXCEPTION", "type": "ValueError", "message": "bad order"}
        assert failed.value.error == error
        assert (await rt.get_run("b")).error == error
        assert await handle.status() is durable.RunStatus.FAILED


async def test_calling_a_workflow_inside_a_runtime_runs_it(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        assert await greet("grace") == "HELLO GRACE!"
        (run,) = await rt.list_runs()
        assert run.status is durable.RunStatus.COMPLETED


async def test_calling_a_workflow_outside_a_runtime_says_how_to_start_one() -> None:
    with pytest.raises(durable.DurableError, match=r"durable\.Runtime"):
        await greet("grace")


def test_durable_run_for_scripts(db: Path) -> None:
    assert durable.run(greet, "lin", db=str(db)) == "HELLO LIN!"


async def test_durable_run_inside_an_event_loop_says_to_use_the_runtime(db: Path) -> None:
    with pytest.raises(durable.DurableError, match=r"inside a running event loop.*async with"):
        durable.run(greet, "lin", db=str(db))


async def test_a_result_timeout_names_the_run_and_its_status(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(parked, run_id="slow")
        await status_is(rt, "slow", "waiting")
        with pytest.raises(TimeoutError, match=r"'slow' did not end within 0.1 s; it is waiting"):
            await handle.result(timeout=0.1)


@durable.workflow(name="runtime.says_when_it_replays")
async def says_when_it_replays(ctx: durable.WorkflowContext) -> list[bool]:
    seen = [ctx.is_replaying]
    await ctx.step("one", str, 1)
    seen.append(ctx.is_replaying)
    await ctx.wait_for_event("go")
    seen.append(ctx.is_replaying)
    return seen


async def test_is_replaying_is_true_only_over_what_the_journal_holds(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(says_when_it_replays, run_id="fresh")
        await status_is(rt, "fresh", "waiting")
        await rt.send_event("fresh", "go")
        assert await rt.handle("fresh").result(timeout=10) == [False, False, False]
        await rt.start(says_when_it_replays, run_id="restarted")
        await status_is(rt, "restarted", "waiting")
        after = await crash(rt)
    try:
        await after.send_event("restarted", "go")
        # The calls at positions 0 and 1 are replayed; what follows the wait is new.
        assert await after.handle("restarted").result(timeout=10) == [True, True, False]
    finally:
        await after.close()


async def test_leaving_the_runtime_leaves_runs_resumable(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(parked, run_id="p")
        await status_is(rt, "p", "waiting")
    async with durable.Runtime(db, recover=False) as rt:
        assert (await rt.get_run("p")).status is durable.RunStatus.WAITING
    async with durable.Runtime(db) as rt:
        await rt.send_event("p", "go", 7)
        assert await rt.handle("p").result(timeout=10) == "7"


async def test_runs_of_unregistered_workflows_are_left_untouched_and_logged_once(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with scoped_workflows():  # the workflow is gone after the block, as after a deploy

        @durable.workflow(name="runtime.ephemeral", version="9")
        async def ephemeral(ctx: durable.WorkflowContext) -> None:
            await ctx.wait_for_event("never")

        async with durable.Runtime(db) as rt:
            await rt.start(ephemeral, run_id="e")
            await status_is(rt, "e", "waiting")
    with caplog.at_level(logging.WARNING, logger="durable"):
        async with durable.Runtime(db) as rt:
            assert (await rt.get_run("e")).status is durable.RunStatus.WAITING
            assert "e" not in rt.loaded_runs
            await rt.ownership.report_unregistered(await rt.store.list_runs(unfinished=True))
    warnings = [r for r in caplog.records if "runtime.ephemeral" in r.getMessage()]
    assert len(warnings) == 1


async def test_starting_an_undecorated_function_is_a_type_error(db: Path) -> None:
    async def plain(ctx: durable.WorkflowContext) -> None: ...

    async with durable.Runtime(db) as rt:
        with pytest.raises(TypeError, match=r"@durable\.workflow"):
            await rt.start(plain)  # type: ignore[arg-type]


async def test_unstorable_arguments_are_refused_before_anything_is_written(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.SerializationError, match=r"runtime\.greet"):
            await rt.start(greet, object())
        assert await rt.list_runs() == []


async def test_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(durable.DurableError, match="is a directory"):
        async with durable.Runtime(tmp_path):
            pass


async def test_path_in_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(durable.DurableError, match="does not exist"):
        async with durable.Runtime(tmp_path / "missing" / "x.db"):
            pass


async def test_path_that_is_not_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(durable.DurableError, match=r"notes\.txt.*not a database"):
        async with durable.Runtime(path):
            pass
    assert path.read_text().startswith("these are not")


async def test_new_journal_is_private_to_its_owner(sqlite_db: Path) -> None:
    db = sqlite_db  # SQLite's own: its file, its reader
    async with durable.Runtime(db):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_memory_journal_works_and_leaves_nothing_behind() -> None:
    async with durable.Runtime(":memory:") as rt:
        assert await (await rt.start(greet, "mem")).result() == "HELLO MEM!"
        path = rt.store.path  # type: ignore[attr-defined]
        assert path.exists()
    assert not path.exists()


async def _commit_setting(rt: durable.Runtime) -> object:
    """``PRAGMA synchronous`` or ``synchronous_commit``, read on the writer's connection."""
    writer = rt.store.writer  # type: ignore[attr-defined]
    if isinstance(rt.store, SqliteStore):
        return await writer.submit(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])

    async def show(conn: Any) -> object:
        return await conn.fetchval("SHOW synchronous_commit")

    return await writer.submit(show)


async def test_durability_modes(db: Path) -> None:
    """Each mode really sets what it says on the connection that commits."""
    expected = {"full": (2, "on"), "normal": (1, "off")}  # SQLite synchronous, PostgreSQL
    for mode in ("full", "normal"):
        async with durable.Runtime(db, durability=mode) as rt:
            assert await (await rt.start(greet, mode)).result() == f"HELLO {mode.upper()}!"
            assert await _commit_setting(rt) in expected[mode]
    with pytest.raises(ValueError, match="durability"):
        durable.Runtime(db, durability="fast")


async def test_reads_right_after_writes_see_them_while_the_poller_reads_too(db: Path) -> None:
    # Regression: interleaved reads on the reader connection once left it on an old
    # snapshot, and result() right after start() raised RunNotFound.
    async with durable.Runtime(db, durability="normal", poll_interval=0.0005) as rt:
        for _ in range(300):
            handle = await rt.start(greet, "x")
            assert await rt.store.get_run(handle.run_id) is not None
            assert await handle.result() == "HELLO X!"


@durable.workflow(name="runtime.echo")
async def echo(ctx: durable.WorkflowContext, value: int) -> int:
    return value


async def test_runs_read_together_are_read_by_one_query(
    sqlite_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_db  # SQLite's own: its file, its reader
    async with durable.Runtime(db) as rt:
        for i in range(30):
            await (await rt.start(echo, i, run_id=f"r{i}")).result()
        queries: list[str] = []

        async def counted(read: Read, sql: str, params: Sequence[Any]) -> list[Any]:
            queries.append(sql)
            return await read(sql, params)

        route_sqlite_reads(monkeypatch, counted)
        handles = [rt.handle(f"r{i}") for i in range(30)]
        results = await asyncio.gather(*(handle.result() for handle in handles))
        missing, found = await asyncio.gather(
            rt.get_run("nope"), rt.get_run("r3"), return_exceptions=True
        )
    assert results == list(range(30))
    assert len(queries) == 2  # the 30 results, then the two runs asked for together
    assert isinstance(missing, durable.RunNotFound)
    assert isinstance(found, durable.RunInfo) and found.run_id == "r3"


HELD: list[int] = []


async def hold_first_attempt(index: int) -> int:
    if durable.step_info().attempt == 1:
        HELD.append(index)
        await asyncio.Event().wait()
    return index


@durable.workflow(name="runtime.held")
async def held(ctx: durable.WorkflowContext, index: int) -> int:
    await ctx.step("before", str, index)
    return await ctx.step("hold", hold_first_attempt, index)


async def test_interrupted_runs_journals_are_loaded_in_bulk(
    sqlite_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_db  # SQLite's own: its file, its reader
    HELD.clear()
    count = 1001  # three reads of at most 500 runs each, not one per run
    rt = durable.Runtime(db, durability="normal")
    await rt.open()
    try:
        for start in range(0, count, 250):
            await asyncio.gather(
                *(rt.start(held, i, run_id=f"h{i}") for i in range(start, min(count, start + 250)))
            )

        async def all_held() -> bool:
            return len(HELD) == count

        await until(all_held)
        queries: list[str] = []

        async def counted(read: Read, sql: str, params: Sequence[Any]) -> list[Any]:
            queries.append(sql)
            return await read(sql, params)

        route_sqlite_reads(monkeypatch, counted)
        rt = await crash(rt)
        results = await asyncio.gather(*(rt.handle(f"h{i}").result() for i in range(count)))
    finally:
        await rt.close()
    assert results == list(range(count))
    journal_reads = [sql for sql in queries if "FROM events WHERE run_id" in sql]
    assert len(journal_reads) == 3
    assert all(sql.count("?") <= 500 for sql in journal_reads)


async def test_generated_run_ids_are_time_ordered_uuids(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(echo, 1)
        assert await handle.result() == 1
    assert uuid.UUID(handle.run_id).version == 7
    ids = []
    for milliseconds in (1_700_000_000_000, 1_700_000_000_001):
        monkeypatch.setattr(time, "time_ns", lambda ms=milliseconds: ms * 1_000_000)
        ids.append(new_run_id())
    assert ids[0] < ids[1]  # ordered across milliseconds, so inserts land at the end
    assert {uuid.UUID(i).variant for i in ids} == {uuid.RFC_4122}
    assert uuid.UUID(ids[0]).int >> 80 == 1_700_000_000_000


def test_run_ids_differ_in_a_forked_child() -> None:
    """The random bytes behind run ids are pooled; a forked child must not reuse them."""
    new_run_id()  # the parent's pool is filled
    with multiprocessing.get_context("fork").Pool(1) as pool:
        in_child = pool.apply(new_run_id)
    in_parent = new_run_id()
    random_bits = (1 << 62) - 1
    assert uuid.UUID(in_child).int & random_bits != uuid.UUID(in_parent).int & random_bits


async def test_a_failed_read_reaches_every_run_asked_for_together(
    sqlite_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_db  # SQLite's own: its file, its reader
    async with durable.Runtime(db) as rt:
        await (await rt.start(echo, 1, run_id="x")).result()

        async def broken(read: Read, sql: str, params: Sequence[Any]) -> list[Any]:
            raise sqlite3.OperationalError("disk I/O error")

        route_sqlite_reads(monkeypatch, broken)
        outcomes = await asyncio.gather(rt.get_run("x"), rt.get_run("y"), return_exceptions=True)
        monkeypatch.undo()
        assert (await rt.get_run("x")).status is durable.RunStatus.COMPLETED  # reads go on
    assert [type(outcome) for outcome in outcomes] == [sqlite3.OperationalError] * 2
