"""Group commit: ordering, isolation of a failing job, and a failed batch losing nothing."""

from __future__ import annotations

import asyncio
import selectors
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.journal.records import (
    Expect,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    StoreUnavailable,
    WaitAnswered,
)
from durable.store.ports import WriteChain
from durable.store.sqlite.memory import JobMemory
from durable.store.sqlite.store import SqliteStore

from .helpers import kinds, sqlite_give_up_after, sqlite_runs_remembered, until


@pytest.fixture
def db(sqlite_db: Path) -> Path:
    """This module tests the SQLite store's own parts: its writers, its file, its migrations."""
    return sqlite_db


pytestmark = pytest.mark.parametrize("writer", ["loop", "thread"])


def run(run_id: str) -> RunRecord:
    return RunRecord(run_id, "wf", "1", "running", "{}", "d", None, None, "me", None, 0.0, 0.0)


def event(run_id: str, position: int) -> NewEvent:
    return NewEvent(run_id, position, "step.started", "s", "{}", 0.0)


async def open_store(db: Path, writer: str) -> SqliteStore:
    store = SqliteStore(db, "normal", writer)
    await store.open()
    for run_id in ("a", "b", "c"):
        await store.create_run(run(run_id))
    return store


async def test_writes_commit_in_call_order_per_run(db: Path, writer: str) -> None:
    store = await open_store(db, writer)
    try:

        async def write_run(run_id: str) -> None:
            pending = [store.append(run_id, [event(run_id, i)]) for i in range(50)]
            await asyncio.gather(*pending)

        await asyncio.gather(*(write_run(r) for r in ("a", "b", "c")))
        journals = await store.load_events(["a", "b", "c"])
    finally:
        await store.close()
    for events in journals.values():
        assert [e.position for e in events] == list(range(50))
    assert store.writer.batches < store.writer.jobs  # writes were grouped


async def test_a_failing_job_fails_alone(db: Path, writer: str) -> None:
    store = await open_store(db, writer)
    refused = Expect(pending_wait="never asked")

    try:
        writes = [
            store.append("a", [event("a", 0)]),
            store.append("b", [event("b", 0)], expect=refused),
            store.append("c", [event("c", 0)]),
        ]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        journals = await store.load_events(["a", "b", "c"])
    finally:
        await store.close()
    assert isinstance(outcomes[1], WaitAnswered)
    assert [len(journals[r]) for r in ("a", "b", "c")] == [1, 0, 1]


async def test_a_batch_that_cannot_commit_fails_its_callers_and_loses_nothing_before(
    db: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(db, writer)
    try:
        await store.append("a", [event("a", 0)])
        sqlite_give_up_after(monkeypatch, 0.0)

        def locked(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database is locked")

        failing: list[Awaitable[Any]] = [
            store.writer.submit(locked),
            store.append("a", [event("a", 1)]),
        ]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        assert all(isinstance(o, StoreUnavailable) and "locked" in str(o) for o in outcomes)
        monkeypatch.undo()
        await store.append("a", [event("a", 2)])
        positions = [e.position for e in (await store.load_events(["a"]))["a"]]
    finally:
        await store.close()
    assert positions == [0, 2]


async def test_a_failed_write_stops_its_chain_and_no_other(db: Path, writer: str) -> None:
    store = await open_store(db, writer)
    chain_a, chain_b = WriteChain(), WriteChain()
    refuse = Expect(pending_wait="never asked")

    try:
        store.append_nowait("a", [event("a", 0)], None, "me@0", chain_a)
        first = [
            store.append("a", [event("a", 1)], expect=refuse, chain=chain_a),
            store.append("b", [event("b", 0)], chain=chain_b),
            store.append("a", [event("a", 2)], chain=chain_a),
        ]
        outcomes = await asyncio.gather(*first, return_exceptions=True)
        later = await asyncio.gather(
            store.append("a", [event("a", 3)], chain=chain_a),
            store.append("b", [event("b", 1)], chain=chain_b),
            return_exceptions=True,
        )
        journals = await store.load_events(["a", "b"])
    finally:
        await store.close()
    assert all(isinstance(o, WaitAnswered) for o in [outcomes[0], outcomes[2], later[0]])
    assert chain_a.unsettled == chain_b.unsettled == 0
    assert isinstance(chain_a.error, WaitAnswered) and chain_b.error is None
    assert [e.position for e in journals["a"]] == [0]  # nothing after the failed write
    assert [e.position for e in journals["b"]] == [0, 1]


async def test_a_batch_that_cannot_commit_stops_the_chains_in_it(
    db: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(db, writer)
    chain = WriteChain()
    try:
        sqlite_give_up_after(monkeypatch, 0.0)

        def locked(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database is locked")

        failing: list[Awaitable[Any]] = [
            store.writer.submit(locked),
            store.append("a", [event("a", 0)], chain=chain),
        ]
        await asyncio.gather(*failing, return_exceptions=True)
        monkeypatch.undo()
        with pytest.raises(StoreUnavailable):  # the chain's own error, not a new write
            await store.append("a", [event("a", 1)], chain=chain)
        positions = [e.position for e in (await store.load_events(["a"]))["a"]]
    finally:
        await store.close()
    assert positions == []


async def test_a_run_whose_unawaited_write_failed_writes_nothing_more_and_resumes_later(
    db: Path, writer: str
) -> None:
    """A step's result is not awaited; if its commit fails, the run stops with no hole."""
    calls: list[str] = []

    async def body(label: str) -> str:
        calls.append(label)
        return label

    @durable.workflow(name="writer.two_steps")
    async def two_steps(ctx: durable.WorkflowContext) -> str:
        await ctx.step("one", body, "one")
        return await ctx.step("two", body, "two")

    async with durable.Runtime(db, durability="normal", writer=writer) as rt:
        with sqlite3.connect(db) as other:
            other.execute(
                "CREATE TRIGGER refuse_results BEFORE INSERT ON events"
                " WHEN NEW.kind = 'step.completed' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        handle = await rt.start(two_steps, run_id="w")

        async def stopped() -> bool:
            return "w" not in rt.loaded_runs

        await until(stopped)
        assert await kinds(rt, "w") == [(0, "step.started", "one")]
    with sqlite3.connect(db) as other:
        other.execute("DROP TRIGGER refuse_results")
    async with durable.Runtime(db, durability="normal", writer=writer) as rt:
        assert await rt.handle(handle.run_id).result() == "two"
        history = await kinds(rt, "w")
    assert calls == ["one", "one", "two"]
    assert history[:4] == [
        (0, "step.started", "one"),
        (None, "run.recovered", "recovered"),  # reopened after the run stopped mid-step
        (0, "step.started", "one"),
        (0, "step.completed", "one"),
    ]


async def test_a_new_run_whose_row_cannot_be_written_writes_nothing(db: Path, writer: str) -> None:
    """A run with a generated id starts before its row commits; if the row fails, so does all."""
    calls: list[str] = []

    async def body() -> str:
        calls.append("ran")
        return "ran"

    @durable.workflow(name="writer.one_step")
    async def one_step(ctx: durable.WorkflowContext) -> str:
        return await ctx.step("body", body)

    async with durable.Runtime(db, durability="normal", writer=writer) as rt:
        with sqlite3.connect(db) as other:
            other.execute(
                "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs"
                " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        with pytest.raises(sqlite3.IntegrityError, match="disk full"):
            await rt.start(one_step)

        async def stopped() -> bool:
            return not rt.loaded_runs

        await until(stopped)
        assert await rt.list_runs() == []
    with sqlite3.connect(db) as other:
        assert other.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert calls == []


def message(run_id: str, value: str) -> NewEvent:
    return NewEvent(run_id, None, "message", "m", value, 0.0)


async def test_events_are_numbered_in_order_when_another_process_writes_the_same_run(
    db: Path, writer: str
) -> None:
    """Each writer remembers a run's last ``seq``; another connection's write must not
    make it hand out a number already taken (the table's key would refuse it)."""
    ours = await open_store(db, writer)
    theirs = SqliteStore(db, "normal", writer)
    await theirs.open()
    try:
        await ours.append("a", [event("a", 0)])
        await ours.append("b", [event("b", i) for i in range(3)])
        cursor = await ours.last_seq()
        await theirs.append("a", [message("a", '"from them"')])
        await ours.append("a", [event("a", 1)])
        await theirs.append("b", [message("b", '"to b"')])
        await ours.append("a", [message("a", '"from us"')])
        journals = await ours.load_events(["a", "b"])
        changes = await ours.changes_since(cursor)
    finally:
        await theirs.close()
        await ours.close()
    assert [(e.seq, e.position) for e in journals["a"]] == [(1, 0), (2, None), (3, 1), (5, None)]
    assert [(e.seq, e.position) for e in journals["b"]] == [(1, 0), (2, 1), (3, 2), (4, None)]
    # Messages follow every earlier message of any run: one cursor finds them all.
    assert [(e.run_id, e.payload) for e in changes] == [
        ("a", '"from them"'),
        ("b", '"to b"'),
        ("a", '"from us"'),
    ]


async def test_an_owned_write_after_a_cancel_in_the_same_batch_writes_nothing(
    db: Path, writer: str
) -> None:
    """Within a transaction a run seen owned is not looked up again, unless a write of
    the same transaction changed it: a cancel queued in between must still stop it."""
    store = await open_store(db, writer)
    chain = WriteChain()
    cancel = RunUpdate(0.0, status="cancelled")
    try:
        asyncio.get_running_loop().call_soon(lambda: None)  # busy: the loop writer batches
        writes = [
            store.append("a", [event("a", 0)], claim="me@0", chain=chain),
            store.append("a", [message("a", '"cancel"')], cancel, expect=Expect()),
            store.append("a", [event("a", 1)], claim="me@0", chain=chain),
        ]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        journals = await store.load_events(["a"])
    finally:
        await store.close()
    assert outcomes[0] == [1] and isinstance(outcomes[2], RunEnded)
    assert [e.position for e in journals["a"]] == [0, None]


async def test_a_run_taken_over_between_two_writes_is_not_written_by_its_old_owner(
    db: Path, writer: str
) -> None:
    """The writer remembers the runs it owns between transactions, but only until
    another connection commits: a takeover in between must be seen."""
    store = await open_store(db, writer)  # creates run "a", owned by "me"
    try:
        await store.append("a", [event("a", 0)], claim="me@0")
        with sqlite3.connect(db) as other:
            other.execute("UPDATE runs SET owner = 'them' WHERE run_id = 'a'")
        with pytest.raises(LeaseLost, match="now held as 'them@0'"):
            await store.append("a", [event("a", 1)], claim="me@0")
        journals = await store.load_events(["a"])
    finally:
        await store.close()
    assert [e.position for e in journals["a"]] == [0]


async def test_the_writers_memory_stays_bounded_and_forgetting_loses_nothing(
    db: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its limit the writer forgets what it remembers of runs, and looks each run
    up again at its next write: numbering and ownership checks go on as before."""
    monkeypatch.setattr(JobMemory, "LIMIT", 2)
    store = await open_store(db, writer)
    run_ids = [f"r{i}" for i in range(10)]
    try:
        for run_id in run_ids:
            await store.create_run(run(run_id))
        remembered = []
        for position in range(3):
            for run_id in run_ids:
                await store.append(run_id, [event(run_id, position)], claim="me@0")
                remembered.append(sqlite_runs_remembered(store))
        with sqlite3.connect(db) as other:
            other.execute("UPDATE runs SET owner = 'them' WHERE run_id = 'r0'")
        with pytest.raises(LeaseLost):
            await store.append("r0", [event("r0", 3)], claim="me@0")
        journals = await store.load_events(run_ids)
    finally:
        await store.close()
    assert max(remembered) <= 3  # the limit, and the run written since it was checked
    for events in journals.values():
        assert [(e.seq, e.position) for e in events] == [(1, 0), (2, 1), (3, 2)]


async def test_the_journal_is_checkpointed_in_the_background(
    db: Path, writer: str, tmp_path: Path
) -> None:
    """Committed pages reach the database file without the writer's own checkpoint
    (10,000 pages away here), and the thread that copies them stops with the store."""
    store = await open_store(db, writer)
    try:
        await store.append("a", [event("a", i) for i in range(20)])
        alone = tmp_path / "without-wal.db"

        async def copied() -> bool:
            alone.write_bytes(db.read_bytes())  # the database file, not its WAL
            try:
                with sqlite3.connect(alone) as conn:
                    count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            except sqlite3.DatabaseError:  # no table yet, or copied mid-checkpoint
                return False
            return bool(count == 20)

        await until(copied)
    finally:
        await store.close()
    assert "durable-checkpoint" not in [thread.name for thread in threading.enumerate()]


async def noop(i: int) -> int:
    return i


@durable.workflow(name="writer.sequential")
async def sequential(ctx: durable.WorkflowContext, steps: int) -> int:
    for i in range(steps):
        await ctx.step("noop", noop, i)
    return steps


class CountingSelector(selectors.DefaultSelector):
    """The selector of an event loop, counting its polls: a loop polls once per iteration."""

    polls = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.polls += 1
        return super().select(timeout)


def loop_iterations(body: Callable[[Callable[[], int]], Coroutine[Any, Any, int]]) -> int:
    """Run ``body(polls)`` on a loop of its own, whose iterations ``polls()`` counts."""
    selector = CountingSelector()
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        return runner.run(body(lambda: selector.polls))


def quiet_runtime(db: Path, writer: str) -> durable.Runtime:
    """A runtime that does not poll the journal meanwhile: polls add their own iterations."""
    return durable.Runtime(db, durability="normal", writer=writer, poll_interval=3600)


def test_sequential_steps_commit_without_yielding_to_the_loop(db: Path, writer: str) -> None:
    """With nothing else to run, each step's write commits at once (the loop writer):
    a 50-step workflow takes a handful of loop iterations, not one per step or two."""
    if writer != "loop":
        pytest.skip("the thread writer hops to its thread for every commit")

    async def fifty_steps(polls: Callable[[], int]) -> int:
        async with quiet_runtime(db, writer) as rt:
            before = polls()
            assert await (await rt.start(sequential, 50)).result() == 50
            return polls() - before

    assert loop_iterations(fifty_steps) < 10


def test_a_committed_end_is_a_result_before_the_run_resumes_to_see_it(
    db: Path, writer: str
) -> None:
    """result() takes an end already committed at once, instead of waiting one more
    loop iteration for the run's task: one-step workflows started and awaited one by
    one take fewer than three iterations each (three before)."""
    if writer != "loop":
        pytest.skip("the thread writer hops to its thread for every commit")

    async def one_by_one(polls: Callable[[], int]) -> int:
        async with quiet_runtime(db, writer) as rt:
            before = polls()
            for _ in range(20):
                assert await (await rt.start(sequential, 1)).result() == 1
            return polls() - before

    assert loop_iterations(one_by_one) < 20 * 3


async def test_a_write_submitted_after_the_writer_stopped_fails_at_once(
    db: Path, writer: str
) -> None:
    store = await open_store(db, writer)
    await store.writer.stop()
    with pytest.raises(RuntimeError, match="not running"):
        await asyncio.wait_for(store.writer.submit(lambda conn: None), 5)
    chain = WriteChain()
    store.writer.submit_nowait(lambda conn: None, chain)
    assert isinstance(chain.error, RuntimeError) and chain.unsettled == 0
    await store.close()
