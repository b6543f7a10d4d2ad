"""The PostgreSQL writer: a batch of writes in one commit, what each write gets back,
and batches whose connection broke mid-call, sent again only if they did not commit."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import asyncpg
import pytest

import durable
from durable.journal.records import (
    LeaseLost,
    NewEvent,
    QueueLimits,
    RunEnded,
    RunRecord,
    RunUpdate,
    StoreUnavailable,
)
from durable.store.ports import WriteChain
from durable.store.postgres.batch import MOST_PER_COMMIT, Entry, take
from durable.store.postgres.schema import split_schema
from durable.store.postgres.store import PostgresStore

from .conftest import NO_POSTGRES, POSTGRES
from .helpers import postgres_writers_connection, until
from .test_postgres import queued_tick

pytestmark = pytest.mark.skipif(POSTGRES is None, reason=NO_POSTGRES)


@pytest.fixture
def backend() -> str:
    """Every test here is PostgreSQL's: ``db`` is a URL with a schema of its own."""
    return "postgres"


class _BreakingConnection:
    """Stands in for the writer's connection: the batch's pipeline breaks, before or
    after the server ran it, as a connection lost mid-call does."""

    def __init__(self, conn: asyncpg.Connection, after_sending: bool) -> None:
        self._conn = conn
        self._after_sending = after_sending
        self.broke = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    async def fetchmany(self, sql: str, args: list[tuple[object, ...]]) -> list[object]:
        if not self.broke:
            self.broke = True
            if self._after_sending:
                await self._conn.fetchmany(sql, args)
            raise asyncpg.ConnectionDoesNotExistError("connection lost (test)")
        return list(await self._conn.fetchmany(sql, args))

    async def fetchrow(self, sql: str, *args: object) -> object:
        if not self.broke:
            self.broke = True
            if self._after_sending:
                await self._conn.fetchrow(sql, *args)
            raise asyncpg.ConnectionDoesNotExistError("connection lost (test)")
        return await self._conn.fetchrow(sql, *args)


@pytest.mark.parametrize("writes", [1, 3])  # one call; a pipeline of three
@pytest.mark.parametrize("after_sending", [False, True])
async def test_a_batch_lost_with_its_connection_is_sent_again_only_if_it_did_not_commit(
    db: str, after_sending: bool, writes: int
) -> None:
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:
        record = RunRecord("r", "wf", "1", "running", "{}", "d", None, None, "me", None, 1.0, 1.0)
        await store.create_run(record)
        breaking = await postgres_writers_connection(
            store.writer, lambda conn: _BreakingConnection(conn, after_sending)
        )
        batch = [
            store.append("r", [NewEvent("r", i, "step.started", "s", "{}", 1.0)], claim="me@0")
            for i in range(writes)
        ]
        if after_sending:  # it committed: its answer is lost, and it is not written twice
            for write in batch:
                with pytest.raises(StoreUnavailable, match="as a write committed"):
                    await write
        else:  # it did not: it is sent again, once
            assert [await write for write in batch] == [[i + 1] for i in range(writes)]
        assert breaking.broke
        events = (await store.load_events(["r"]))["r"]
        assert [(e.seq, e.position) for e in events] == [(i + 1, i) for i in range(writes)]
    finally:
        await store.close()


async def test_a_batch_of_owners_writes_refuses_write_by_write(db: str) -> None:
    """A batch of a runtime's own writes goes in one pipeline: a run owned by another,
    or ended, refuses its writes; the others' are written, seqs in order; a child's end
    is told to its parent."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:
        for run_id, owner, status in (("mine", "me", "running"), ("theirs", "you", "running")):
            record = RunRecord(
                run_id, "wf", "1", status, "{}", "d", None, None, owner, None, 1.0, 1.0
            )
            await store.create_run(record)
        await store.create_run(
            RunRecord("done", "wf", "1", "completed", "{}", "d", None, None, "me", None, 1.0, 1.0)
        )

        kid = RunRecord(
            "kid", "wf", "1", "running", "{}", "d", None, None, "me", None, 1.0, 1.0, "mine"
        )
        await store.create_run(kid)
        end = RunUpdate(3.0, status="completed", output='"ok"')

        def write(run_id: str, position: int, status: str | None = None) -> Any:
            update = None if status is None else RunUpdate(2.0, status=status)
            event = NewEvent(run_id, position, "step.started", "s", "{}", 1.0)
            return store.append(run_id, [event, event], update, claim="me@0")

        batch = [
            write("mine", 0),
            write("theirs", 0),
            write("mine", 1, "sleeping"),
            write("done", 0),
        ]
        batch.append(store.append("kid", [], end, claim="me@0"))
        outcomes = await asyncio.gather(*batch, return_exceptions=True)
        assert outcomes[0] == [1, 2] and outcomes[2] == [3, 4]
        assert isinstance(outcomes[1], LeaseLost) and isinstance(outcomes[3], RunEnded)
        assert outcomes[4] == []
        events = await store.load_events(["mine", "theirs", "done"])
        told = [(e.seq, e.position, e.kind, e.name, e.payload) for e in events["mine"][4:]]
        assert told == [(5, None, "message", "child:kid", '{"status":"completed"}')]
        assert [(e.seq, e.position) for e in events["mine"][:4]] == [(1, 0), (2, 0), (3, 1), (4, 1)]
        assert events["theirs"] == [] and events["done"] == []
        ended = await store.get_run("kid")
        assert ended is not None and (ended.status, ended.output) == ("completed", '"ok"')
        mine = await store.get_run("mine")
        assert mine is not None and mine.status == "sleeping" and mine.updated_at == 2.0
    finally:
        await store.close()


async def test_runs_started_in_one_moment_are_created_in_one_commit_each_once(db: str) -> None:
    """Starts queued together go in one commit; an id given twice in it is created by
    its first start, and the second finds that run."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:

        def start(run_id: str, digest: str) -> Any:
            record = RunRecord(
                run_id, "wf", "1", "pending", "{}", digest, None, None, None, None, 1.0, 1.0
            )
            return store.create_run(record)

        batches = store.writer.batches
        first, again, other = await asyncio.gather(
            start("twice", "d1"), start("twice", "d2"), start("once", "d3")
        )
        assert first[1] is True and first[0].input_digest == "d1"
        assert again[1] is False and again[0].input_digest == "d1"  # the first start's run
        assert other[1] is True
        assert store.writer.batches == batches + 1  # one commit
        stored = await store.get_run("twice")
        assert stored is not None and stored.input_digest == "d1"
    finally:
        await store.close()


async def test_a_moments_writes_of_many_runs_commit_in_parts_each_run_in_order(
    db: str,
) -> None:
    """More writes queued at once than one commit takes (``MOST_PER_COMMIT``) commit in
    several, in the order they came: each run's two writes in one commit, numbered in
    order, and none lost."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:
        runs = [f"r{i}" for i in range(MOST_PER_COMMIT)]
        await asyncio.gather(
            *(
                store.create_run(
                    RunRecord(r, "wf", "1", "running", "{}", "d", None, None, "me", None, 1.0, 1.0)
                )
                for r in runs
            )
        )
        batches = store.writer.batches
        writes = []
        for run_id in runs:
            chain = WriteChain()
            for position, kind in enumerate(("step.completed", "step.started")):
                event = NewEvent(run_id, position, kind, "s", "{}", 1.0)
                writes.append(store.append(run_id, [event], claim="me@0", chain=chain))
        assert await asyncio.gather(*writes) == [[1], [2]] * len(runs)
        assert store.writer.batches == batches + 2  # two commits of MOST_PER_COMMIT jobs
        for run_id in runs:
            kinds = [event.kind for event in await store.events_after(run_id, 0)]
            assert kinds == ["step.completed", "step.started"]
    finally:
        await store.close()


def test_a_commit_cut_never_parts_a_chains_adjacent_jobs() -> None:
    """Where the cut would fall between two jobs of one chain (a step's end and the next
    step's start), the commit takes the second too."""
    alone, run = WriteChain(), WriteChain()
    pending = [Entry(None, None, alone)] * (MOST_PER_COMMIT - 1) + [Entry(None, None, run)] * 3
    first, rest = take(pending)
    assert len(first) == MOST_PER_COMMIT + 2 and rest == []
    pending = [Entry(None, None, WriteChain()) for _ in range(MOST_PER_COMMIT + 5)]
    first, rest = take(pending)
    assert (first, rest) == (pending[:MOST_PER_COMMIT], pending[MOST_PER_COMMIT:])


class _CountingCalls:
    """Stands in for the writer's connection and counts the statements of each pipeline
    (a call alone is a pipeline of one)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.pipelines: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    async def fetchmany(self, sql: str, args: list[tuple[object, ...]]) -> list[object]:
        self.pipelines.append(len(args))
        return list(await self._conn.fetchmany(sql, args))

    async def fetchrow(self, sql: str, *args: object) -> object:
        self.pipelines.append(1)
        return await self._conn.fetchrow(sql, *args)


async def test_a_steps_end_and_the_next_steps_start_are_one_call(db: str) -> None:
    """Two writes of one run by its owner (a step's end, then the next step's start)
    are one ``append`` call, one round trip; what each write gets back is its own, and
    a refused one refuses the next."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:
        row = RunRecord("r", "wf", "1", "pending", "{}", "d", None, None, "me", None, 1.0, 1.0)
        await store.create_run(row)
        counting = await postgres_writers_connection(store.writer, _CountingCalls)
        ended = NewEvent("r", 0, "step.completed", "s", "{}", 1.0)
        started = NewEvent("r", 1, "step.started", "t", "{}", 1.0)
        first = store.append("r", [ended], claim="me@0")
        second = store.append("r", [started], RunUpdate(2.0, status="running"), claim="me@0")
        assert (await first, await second) == ([1], [2])
        assert counting.pipelines == [1]
        record = await store.get_run("r")
        assert record is not None and record.status == "running"
        theirs = store.append("r", [ended], claim="you@0")
        also = store.append("r", [started], claim="you@0")
        for refused in (theirs, also):
            with pytest.raises(LeaseLost):
                await refused
        assert counting.pipelines == [1, 1]
    finally:
        await store.close()


async def test_writes_around_a_job_commit_with_it_each_side_one_pipeline(db: str) -> None:
    """A batch with a job in it is one transaction: the writes before the job are one
    pipeline, the writes after it another, and each write still gets its own answer."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:
        row = RunRecord("r", "wf", "1", "running", "{}", "d", None, None, "me", None, 1.0, 1.0)
        await store.create_run(row)
        await store.create_run(dataclasses.replace(row, run_id="q"))
        counting = await postgres_writers_connection(store.writer, _CountingCalls)
        batches = store.writer.batches

        async def job(conn: asyncpg.Connection) -> object:
            return await conn.fetchval("SELECT count(*) FROM events")

        chain = WriteChain()
        writes = [  # of two runs: one run's writes would be one call
            store.append(
                run, [NewEvent(run, 0, "step.started", "s", "{}", 1.0)], claim="me@0", chain=chain
            )
            for run in ("r", "q")
        ]
        counted = store.writer.submit(job)
        later = [
            store.append("r", [NewEvent("r", 2, "step.started", "s", "{}", 1.0)], claim="me@0"),
            store.append("r", [NewEvent("r", 3, "step.started", "s", "{}", 1.0)], claim="you@0"),
        ]
        assert [await write for write in writes] == [[1], [1]]
        assert await counted == 2  # the job sees the writes before it
        assert await later[0] == [2]
        with pytest.raises(LeaseLost):
            await later[1]
        assert counting.pipelines == [2, 2] and store.writer.batches == batches + 1
    finally:
        await store.close()


async def test_an_owners_progress_behind_a_concurrent_writer_takes_the_next_seq(db: str) -> None:
    """An owner's progress that waits for the run's row while another writer's events
    of that run commit takes the seq after theirs. A run whose row is gone refuses the
    owner's progress as deleted."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    url, schema = split_schema(db)
    other = await asyncpg.connect(url)
    try:
        row = RunRecord("r", "wf", "1", "running", "{}", "d", None, None, "me", None, 1.0, 1.0)
        await store.create_run(row)
        await store.append("r", [NewEvent("r", 0, "step.started", "s", "{}", 1.0)], claim="me@0")
        writer_pid = (await postgres_writers_connection(store.writer)).get_server_pid()
        transaction = other.transaction()
        await transaction.start()
        await other.execute(f'SELECT 1 FROM "{schema}".runs WHERE run_id = $1 FOR UPDATE', "r")
        await other.execute(
            f'INSERT INTO "{schema}".events (run_id, seq, position, kind, name, payload,'
            " created_at) VALUES ('r', 2, NULL, 'message', 'note', '{}', 1.0)"
        )
        ended = store.append(
            "r", [NewEvent("r", 0, "step.completed", "s", "{}", 1.0)], claim="me@0"
        )

        async def waits_for_the_row() -> bool:
            return bool(
                await other.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                    writer_pid,
                )
            )

        await until(waits_for_the_row)
        await transaction.commit()
        assert await ended == [3]
        events = (await store.load_events(["r"]))["r"]
        assert [(e.seq, e.kind) for e in events] == [
            (1, "step.started"),
            (2, "message"),
            (3, "step.completed"),
        ]
        await other.execute(f'DELETE FROM "{schema}".runs WHERE run_id = $1', "r")
        with pytest.raises(LeaseLost, match="deleted") as lost:
            await store.append(
                "r", [NewEvent("r", 1, "step.started", "t", "{}", 1.0)], claim="me@0"
            )
        assert lost.value.deleted
    finally:
        await other.close()
        await store.close()


async def test_an_admission_behind_runs_ends_commits_with_them(db: str) -> None:
    """A batch of a runtime's own writes and the admissions asked for behind them are
    one commit: the ends free their slots and the next runs take them, each run once."""
    store = PostgresStore(db, durability="normal")
    await store.open()
    try:
        for i in range(5):
            row = RunRecord(
                f"r{i}", "wf", "1", "queued", "{}", "d", None, None, None, None, float(i), 1.0
            )
            row.queue = "q"
            await store.create_run(row)
        limits = QueueLimits("q", concurrency=3)
        assert len((await store.admit("me", 100.0, 1.0, [limits], limit=10)).runs) == 3
        batches = store.writer.batches
        ends = [
            store.append(f"r{i}", [], RunUpdate(2.0, status="completed"), claim="me@1")
            for i in range(3)
        ]
        first = store.admit("me", 100.0, 2.0, [limits], limit=10)
        last = store.admit("me", 100.0, 2.0, [limits], limit=10)
        assert [await end for end in ends] == [[], [], []]
        admitted = (await first).runs + (await last).runs
        assert [r.run_id for r in admitted] == ["r3", "r4"]
        assert store.writer.batches == batches + 1
        assert await store.queue_counts("q") == (0, 2)
    finally:
        await store.close()


class _LosingAdmissions:
    """Stands in for the writer's connection: the first commit with an admission that
    took a run commits on the server, and its answer is lost with the connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.took = False
        self.lost = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    async def fetch(self, sql: str, *args: object) -> list[object]:
        rows = list(await self._conn.fetch(sql, *args))
        if "admit" in sql and any(row["o_run_id"] is not None for row in rows):
            self.took = True
        return rows

    def transaction(self) -> object:
        return _LosingCommit(self, self._conn.transaction())


class _LosingCommit:
    def __init__(self, conn: _LosingAdmissions, transaction: Any) -> None:
        self._conn = conn
        self._transaction = transaction

    def __getattr__(self, name: str) -> object:
        return getattr(self._transaction, name)

    async def start(self) -> None:
        self._conn.took = False
        await self._transaction.start()

    async def commit(self) -> None:
        await self._transaction.commit()
        if self._conn.took and not self._conn.lost:
            self._conn.lost += 1
            raise asyncpg.ConnectionDoesNotExistError("connection lost (test)")


async def test_runs_admitted_by_a_call_whose_answer_was_lost_still_run(db: str) -> None:
    """The admission committed, but the connection broke before its answer came: the
    runs it took are this runtime's and run nowhere until it claims them again."""
    async with durable.Runtime(db, durability="normal") as rt:
        writer = rt.store.writer  # type: ignore[attr-defined]
        losing = await postgres_writers_connection(writer, _LosingAdmissions)
        handles = [await rt.start(queued_tick, i) for i in range(3)]
        assert [await h.result(timeout=20) for h in handles] == [0, 1, 2]
        assert losing.lost == 1
