"""The SQLite store: one writer with group commit, and an aiosqlite reader.

Three tables, plain JSON text in plain columns, readable from the ``sqlite3``
shell: ``runs``, their ``events`` (the journal), and the ``owners`` whose
leases cover the runs they hold. ``":memory:"`` is a private temporary file removed on close, so it
behaves exactly like a file (two connections, WAL) without persisting.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from durable._base.aio import ready
from durable.errors import DurableError
from durable.journal.records import (
    TERMINAL,
    Admitted,
    EventRecord,
    Expect,
    NewEvent,
    QueueLimits,
    RunEnded,
    RunRecord,
    RunUpdate,
    ScheduleRecord,
    admission_key,
)
from durable.store.ports import RunFilter, WriteChain
from durable.store.sqlite import jobs, leases
from durable.store.sqlite.checkpointer import Checkpointer
from durable.store.sqlite.memory import JobMemory
from durable.store.sqlite.schema import check_path, enter_wal, migrate, refuse_newer
from durable.store.sqlite.sql import (
    _EVENT_COLUMNS,
    _IN_QUEUE,
    _QUEUED,
    _RUN_COUNTS,
    _RUN_READ,
    _SCHEDULE_READ,
    _SYNCHRONOUS,
    EVENTS_OF,
    RUN_TREE,
    SPEND_OF,
    SPEND_TAIL,
    WAL_AUTOCHECKPOINT,
    check_expected,
    event_record,
    owned_status,
    run_record,
    runs_where,
)
from durable.store.sqlite.writer import LoopWriter, ThreadWriter, Writer


class SqliteStore:
    """A journal in one SQLite file (WAL)."""

    pushes_changes = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        durability: str = "full",
        writer: str | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'full' or 'normal', got {durability!r}")
        writer = writer or ("thread" if durability == "full" else "loop")
        if writer not in ("loop", "thread"):
            raise ValueError(f"writer must be 'loop' or 'thread', got {writer!r}")
        self._synchronous = _SYNCHRONOUS[durability]
        self._tempdir: str | None = None
        if str(path) == ":memory:":
            self._tempdir = tempfile.mkdtemp(prefix="durable-")
            path = os.path.join(self._tempdir, "journal.db")
        self.path = Path(path)
        self._memory = JobMemory()
        self._admissions: dict[Hashable, int] = {}  # the latest asked for, by admission_key
        self._writer: Writer = (LoopWriter if writer == "loop" else ThreadWriter)(
            self._connect_writer, self._memory
        )
        self._checkpointer = Checkpointer(self._connect_checkpointer)
        self._reader: aiosqlite.Connection | None = None
        self._poll_interval = poll_interval
        self._data_version: int | None = None
        self._run_reads: dict[str, list[asyncio.Future[RunRecord | None]]] = {}
        self._reading: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        check_path(self.path)
        try:
            self._writer.start()
            self._checkpointer.start()
            self._reader = await aiosqlite.connect(self.path)
            await self._reader.execute("PRAGMA busy_timeout = 10000")
            await self._reader.execute("PRAGMA query_only = 1")
            self._data_version = await self._writer.data_version()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise DurableError(f"cannot open journal {self.path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await asyncio.to_thread(self._checkpointer.stop)
        await asyncio.gather(*self._reading, return_exceptions=True)
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        await self._writer.stop()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            refuse_newer(conn, self.path)  # before anything, even WAL mode, changes the file
            enter_wal(conn)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            # Checkpoint every 10,000 pages (40 MB of WAL) instead of 1,000: a journal
            # rewrites the same few pages, so rarer checkpoints copy far fewer pages. The
            # background checkpointer usually has copied them already (checkpointer.py).
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise DurableError(
                f"cannot open journal {self.path}: {exc} (is it a SQLite file written by durable?)"
            ) from None
        return conn

    def _connect_checkpointer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 1000")  # its own thread: waiting stalls nothing
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # a checkpoint syncs as set
        return conn

    @property
    def writer(self) -> Writer:
        return self._writer

    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise DurableError("the journal is closed; use the runtime inside `async with`")
        return self._reader

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # One hop runs the statement to its end. Separate execute/fetch hops would let
        # concurrent reads interleave on the connection, and a statement left open by
        # one keeps the other on an old WAL snapshot, blind to newer commits.
        return list(await self._read().execute_fetchall(sql, params))

    # -- runs --------------------------------------------------------------

    async def create_run(
        self, run: RunRecord, chain: WriteChain | None = None, *, fresh_id: bool = False
    ) -> tuple[RunRecord, bool]:
        job = functools.partial(jobs.create_run, memory=self._memory, run=run, fresh_id=fresh_id)
        return await self._writer.submit(job, chain)

    async def get_run(self, run_id: str) -> RunRecord | None:
        # Runs asked for in the same moment (say, the results of many runs awaited
        # together) are read by one query: a reader hop costs more than the query.
        future: asyncio.Future[RunRecord | None] = asyncio.get_running_loop().create_future()
        if not self._run_reads:
            task = asyncio.ensure_future(self._read_runs())
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)
        self._run_reads.setdefault(run_id, []).append(future)
        return await future

    async def _read_runs(self) -> None:
        await asyncio.sleep(0)  # let the other reads asked for in this moment join
        wanted, self._run_reads = self._run_reads, {}
        try:
            rows = await self._fetch_for(f"{_RUN_READ} WHERE runs.run_id IN", list(wanted))
        except BaseException as exc:
            # The callers get the error; only a cancellation goes on up.
            error = exc if isinstance(exc, Exception) else DurableError("the read was stopped")
            for futures in wanted.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        found = {row[0]: run_record(row) for row in rows}
        for run_id, futures in wanted.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(run_id))

    async def list_runs(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = 100,
        unfinished: bool = False,
        *,
        after: tuple[float, str] | None = None,
        since: float | None = None,
        until: float | None = None,
        parent: str | None = None,
        id_contains: str | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        found = RunFilter(
            status, workflow, unfinished, after, since, until, parent, id_contains, id_prefix
        )
        where, params = runs_where(found)
        order = "" if unfinished and limit is None else " ORDER BY created_at DESC, runs.run_id"
        rows = await self._fetchall(
            f"{_RUN_READ} {where}{order} LIMIT ?", (*params, -1 if limit is None else limit)
        )
        return [run_record(row) for row in rows]

    async def prune(self, ended_before: float, limit: int) -> int:
        job = functools.partial(
            jobs.prune, memory=self._memory, ended_before=ended_before, limit=limit
        )
        return await self._writer.submit(job)

    # -- events ------------------------------------------------------------

    def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None = None,
        expect: Expect | None = None,
        claim: str | None = None,
        chain: WriteChain | None = None,
    ) -> asyncio.Future[list[int]]:
        if claim is not None and expect is None:
            # A partial, not a closure: a run's every write comes here, and a closure
            # over six names is eight objects for the garbage collector to track.
            owned = functools.partial(self._owned_append, run_id, events, update, claim)
            return self._writer.submit(owned, chain)

        def job(conn: sqlite3.Connection) -> list[int]:
            if update is not None:  # it may end the run (a cancel): not owned as remembered
                self._memory.held.pop(run_id, None)
            if expect is not None:
                check_expected(conn, run_id, expect)
            if update is not None and not jobs.update_run(conn, self._memory, run_id, update):
                return []
            return [self._memory.insert(conn, event) for event in events]

        return self._writer.submit(job, chain)

    def append_nowait(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None,
        claim: str,
        chain: WriteChain,
    ) -> None:
        job = functools.partial(self._owned_append, run_id, events, update, claim)
        self._writer.submit_nowait(job, chain)

    async def supersede(
        self, run_id: str, position: int, update: RunUpdate, events: Sequence[NewEvent] = ()
    ) -> int:
        job = functools.partial(
            jobs.supersede,
            memory=self._memory,
            run_id=run_id,
            position=position,
            update=update,
            events=events,
        )
        return await self._writer.submit(job)

    def _owned_append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None,
        claim: str,
        conn: sqlite3.Connection,
    ) -> list[int]:
        """Append and update only if the unfinished run is still held under ``claim``:
        else LeaseLost, or RunEnded when the run has ended (it was cancelled). A run
        remembered as held is not read again (see JobMemory): only our own jobs could
        have changed it since, and those that may have forget it or remember the new
        claim."""
        held = self._memory.held
        if update is not None:
            held.pop(run_id, None)
            # The update checks the claim itself: no statement of its own for the check.
            if not jobs.update_run(conn, self._memory, run_id, update, claim):
                status = owned_status(conn, run_id, claim)  # LeaseLost, unless it has ended
                raise RunEnded(run_id, status)
            if update.only_if_active and update.status not in TERMINAL and not update.release:
                held[run_id] = claim
        elif held.get(run_id) != claim:
            status = owned_status(conn, run_id, claim)
            if status in TERMINAL:
                raise RunEnded(run_id, status)
            held[run_id] = claim
        seqs = [self._memory.insert(conn, event) for event in events]
        if update is not None and update.status in TERMINAL:
            self._memory.ended(run_id)
        return seqs

    async def send(self, message: NewEvent, expect: Expect, key: str | None = None) -> int | None:
        job = functools.partial(
            jobs.send, memory=self._memory, message=message, expect=expect, key=key
        )
        return await self._writer.submit(job)

    async def cancel(self, run_id: str, now: float, error: str | None = None) -> list[str]:
        job = functools.partial(
            jobs.cancel, memory=self._memory, run_id=run_id, now=now, error=error
        )
        return await self._writer.submit(job)

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        rows = await self._fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, seq),
        )
        return [event_record(row) for row in rows]

    async def load_events(self, run_ids: Sequence[str]) -> dict[str, list[EventRecord]]:
        result: dict[str, list[EventRecord]] = {run_id: [] for run_id in run_ids}
        for row in await self._fetch_for(EVENTS_OF, run_ids, "ORDER BY run_id, seq"):
            result[row[1]].append(event_record(row))
        return result

    async def spend_events(self, after: Mapping[str, int]) -> dict[str, list[EventRecord]]:
        result: dict[str, list[EventRecord]] = {run_id: [] for run_id in after}
        runs = list(after.items())
        for start in range(0, len(runs), 250):
            chunk = runs[start : start + 250]
            pairs = " OR ".join(["(run_id = ? AND seq > ?)"] * len(chunk))
            params = [value for run in chunk for value in run]
            for row in await self._fetchall(f"{SPEND_OF} ({pairs}) {SPEND_TAIL}", params):
                result[row[1]].append(event_record(row))
        return result

    async def _fetch_for(self, head: str, ids: Sequence[str], tail: str = "") -> list[Any]:
        """``head (?,?,...) tail`` for every id, 500 ids a query (SQLite's limit is higher,
        but a reader hop per 500 rows keeps other reads from waiting long)."""
        rows: list[Any] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows.extend(await self._fetchall(f"{head} ({marks}) {tail}", chunk))
        return rows

    async def changes_since(self, seq: int) -> list[EventRecord]:
        rows = await self._fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? AND position IS NULL ORDER BY seq",
            (seq,),
        )
        return [event_record(row) for row in rows]

    async def last_seq(self) -> int:
        rows = await self._fetchall(
            "SELECT coalesce(max(seq), 0) FROM events WHERE position IS NULL"
        )
        return int(rows[0][0])

    async def wait_for_change(self, timeout: float) -> bool:
        """Polls ``PRAGMA data_version`` every ``poll_interval`` until it moves or
        ``timeout`` passes: one cheap query on the writer's connection, where it moves
        when another connection commits and never for this store's own commits (as
        on PostgreSQL, they are known here already)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await asyncio.sleep(min(self._poll_interval, max(0.0, deadline - loop.time())))
            version = await self._writer.data_version()
            changed, self._data_version = self._data_version != version, version
            if changed or loop.time() >= deadline:
                return changed

    # -- ownership ---------------------------------------------------------

    async def claim(
        self,
        owner: str,
        lease_until: float,
        now: float,
        *,
        limit: int,
        dead_owners: Sequence[str] = (),
        run_ids: Sequence[str] | None = None,
        workflows: Sequence[tuple[str, str]] | None = None,
        include_own: bool = True,
        skip: Sequence[str] = (),
    ) -> list[RunRecord]:
        if workflows is not None and not workflows:
            return []
        job = functools.partial(
            leases.claim,
            memory=self._memory,
            owner=owner,
            lease_until=lease_until,
            now=now,
            limit=limit,
            dead=set(dead_owners),
            run_ids=run_ids,
            workflows=workflows,
            include_own=include_own,
            skip=skip,
        )
        return await self._writer.submit(job)

    def admit(
        self,
        owner: str,
        lease_until: float,
        now: float,
        queues: Sequence[QueueLimits],
        *,
        limit: int,
        workflows: Sequence[tuple[str, str]] | None = None,
    ) -> Awaitable[Admitted]:
        if not queues or (workflows is not None and not workflows):
            return ready(Admitted([]))
        key = admission_key(owner, queues, workflows)
        ticket = self._admissions[key] = self._admissions.get(key, 0) + 1
        admit = functools.partial(
            leases.admit,
            memory=self._memory,
            owner=owner,
            lease_until=lease_until,
            now=now,
            queues=queues,
            limit=limit,
            workflows=workflows,
        )

        def job(conn: sqlite3.Connection) -> Admitted:
            if self._admissions[key] != ticket:  # a later one, queued behind, does it
                return Admitted([])
            return admit(conn)

        return self._writer.submit(job)

    async def queue_names(self) -> list[str]:
        rows = await self._fetchall(
            "SELECT DISTINCT queue FROM runs WHERE queue IS NOT NULL ORDER BY queue"
        )
        return [name for (name,) in rows]

    async def queue_counts(self, queue: str) -> tuple[int, int]:
        (queued,) = (await self._fetchall(_QUEUED, (queue,)))[0]
        (running,) = (await self._fetchall(_IN_QUEUE, (queue,)))[0]
        return int(queued), int(running)

    async def run_tree(self, run_id: str) -> dict[str, str | None]:
        return dict(await self._fetchall(RUN_TREE, (run_id,)))

    async def run_counts(self) -> dict[tuple[str, str], int]:
        rows = await self._fetchall(_RUN_COUNTS)
        return {(workflow, status): int(n) for workflow, status, n in rows}

    async def see_schedule(self, workflow: str, cron: str, tz: str, now: float) -> ScheduleRecord:
        job = functools.partial(jobs.see_schedule, workflow=workflow, cron=cron, tz=tz, now=now)
        return await self._writer.submit(job)

    async def note_tick(self, workflow: str, tick: float) -> None:
        await self._writer.submit(functools.partial(jobs.note_tick, workflow=workflow, tick=tick))

    async def schedules(self) -> list[ScheduleRecord]:
        rows = await self._fetchall(_SCHEDULE_READ + " ORDER BY workflow")
        return [ScheduleRecord(*row) for row in rows]

    async def owners(self) -> dict[str, float]:
        rows = await self._fetchall("SELECT owner, lease_until FROM owners")
        return {owner: float(lease_until) for owner, lease_until in rows}

    async def renew(self, owner: str, lease_until: float, now: float) -> set[str] | None:
        return await self._writer.submit(functools.partial(leases.renew, owner, lease_until, now))

    async def release(self, owner: str, run_ids: Sequence[str] = ()) -> None:
        await self._writer.submit(functools.partial(leases.release, owner, run_ids))
