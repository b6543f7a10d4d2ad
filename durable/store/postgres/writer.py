"""Group commit on PostgreSQL: every journal write queued in a moment, one transaction.

The same contract as the SQLite writers (``sqlite/writer.py``): callers submit jobs
and await a future; jobs queued while a batch commits form the next batch (up to
``MOST_PER_COMMIT`` jobs; the rest go in the ones after); one job's SQL error does
not undo the others (the batch is run again with a savepoint per job); jobs of one
``WriteChain`` commit in order and none after one has failed.

A job is a journal *write* (``append``'s parameters: every write of a run, its start
included, is one call of that function, which checks the write's claim and
expectations in SQL) or an async function of the connection. A batch of writes is
sent as one pipeline of ``append`` calls: a single round trip, which commits as one
implicit transaction, so a sequential step costs one commit. A batch with other
jobs is one explicit transaction: its adjacent writes still one pipeline each, the
other jobs one by one between them (``commit.py``).

Every batch also records its number in ``writers`` (``finish_batch``), so a
batch whose connection broke is never guessed about: after reconnecting the
writer reads whether it committed. If it did not, it is sent again, with
backoff, for up to ``give_up_after`` seconds (a restarting server, a killed
connection, a deadlock); if it did, its answers are lost with the connection
and its writes fail with ``StoreUnavailable`` (their runs are let go and
claimed again from what the journal holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from durable._base.aio import Backoff
from durable.journal.records import StoreUnavailable
from durable.store.batch import settle
from durable.store.ports import WriteChain
from durable.store.postgres.batch import Entry, Job, fail_jobs, take
from durable.store.postgres.commit import Committer, is_transient
from durable.store.postgres.functions import Write

log = logging.getLogger("durable")


class PgWriter:
    """One connection that commits batches of jobs; ``connect`` makes a new one.

    ``append_sql`` is the SQL that writes run, in the journal's schema ``schema``:
    ``append`` and then ``finish_batch``, whose three parameters come last (this
    writer, the batch's number, the channel to notify or null). Each batch gives
    them once, and ``finish_batch`` NOTIFYs ``channel`` with ``writer_id`` when a
    job asked for it.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        schema: str,
        append_sql: str,
        writer_id: str,
        channel: str,
        give_up_after: float = 30.0,
    ) -> None:
        self._connect = connect
        self._committer = Committer(schema, append_sql)
        self._marker_sql = f"SELECT batch FROM {schema}.writers WHERE writer = $1"
        self._forget_sql = f"DELETE FROM {schema}.writers WHERE writer = $1"
        self.writer_id = writer_id
        self._channel = channel
        self.give_up_after = give_up_after
        self._failing_since: float | None = None  # the loop time of an outage's first fault
        self._conn: asyncpg.Connection | None = None
        self._pending: list[Entry] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._batch_number = 0
        self.batches = 0
        self.jobs = 0

    async def start(self) -> None:
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="durable-pg-writer")

    def submit(
        self, job: Job, chain: WriteChain | None = None, notify: bool = False
    ) -> asyncio.Future[Any]:
        """Run ``job(connection)`` in the next batch; its value or error, once committed."""
        return self._submit(Entry(job, None, chain, notify=notify))

    def submit_write(
        self,
        write: Write,
        finish: Callable[[Any], Any],
        chain: WriteChain | None = None,
        notify: bool = False,
        guard: str | None = None,
    ) -> asyncio.Future[Any]:
        """Call ``append`` with ``write``; ``finish(row)`` once committed (it may raise).

        ``guard`` names what the SQL checks and only a refusal can prove false (such
        as "owned by me"): writes of one chain with the same guard may share a
        pipeline, as the SQL refuses all that follow a refused one.
        """
        return self._submit(Entry(None, None, chain, write, finish, notify, guard))

    def submit_write_nowait(
        self,
        write: Write,
        finish: Callable[[Any], Any],
        chain: WriteChain,
        guard: str | None = None,
    ) -> None:
        if self._task is None or self._stopping:
            chain.error = chain.error or RuntimeError("the journal writer is not running")
            return
        self._queue(Entry(None, None, chain, write, finish, False, guard))

    def _submit(self, entry: Entry) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._task is None or self._stopping:
            future.set_exception(RuntimeError("the journal writer is not running"))
            return future
        self._queue(entry._replace(future=future))
        return future

    def _queue(self, entry: Entry) -> None:
        if entry.chain is not None:
            entry.chain.unsettled += 1
        self._pending.append(entry)
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            if not self._conn.is_closed():
                with contextlib.suppress(Exception):
                    await self._conn.execute(self._forget_sql, self.writer_id)
                await self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = take(self._pending)
                outcomes = await self._commit_surviving_faults(batch)
                self.batches += 1
                self.jobs += len(batch)
                settle(batch, outcomes)
            if self._stopping:
                return

    async def _commit_surviving_faults(self, batch: list[Entry]) -> list[Any]:
        backoff = Backoff(self.give_up_after)
        while True:
            self._batch_number += 1
            number = self._batch_number
            try:
                channel = self._channel if any(entry.notify for entry in batch) else None
                marker = (self.writer_id, number, channel)
                conn = await self._connection()
                outcomes = await self._committer.commit(conn, batch, marker)
                self._answered()
                return outcomes
            except Exception as exc:
                if not is_transient(exc):
                    if not isinstance(exc, asyncpg.PostgresError):
                        self._drop_connection()  # asyncpg may be mid-operation on it
                    return fail_jobs(batch, exc)
                fault = exc
            # The batch may or may not have committed: ask, until the server answers.
            while True:
                self._drop_connection()
                try:
                    committed = await self._committed(number)
                    break
                except Exception as exc:
                    if not is_transient(exc):
                        return fail_jobs(batch, exc)
                    fault = exc
                    if not await self._backoff(backoff, fault):
                        return fail_jobs(
                            batch, StoreUnavailable(f"PostgreSQL did not answer: {fault}")
                        )
            if committed:
                return fail_jobs(
                    batch,
                    StoreUnavailable(
                        f"the connection to PostgreSQL broke as a write committed ({fault});"
                        " the run is claimed again from its journal"
                    ),
                )
            if not await self._backoff(backoff, fault):
                return fail_jobs(batch, StoreUnavailable(f"PostgreSQL did not answer: {fault}"))

    async def _backoff(self, backoff: Backoff, fault: Exception) -> bool:
        """Wait before the next try; False once it is time to give up. An outage is
        told once as it begins, and once as it ends (``_answered``)."""
        if self._stopping:
            return False
        if self._failing_since is None:
            self._failing_since = asyncio.get_running_loop().time()
            log.warning(
                "durable: PostgreSQL write failed (%s); retrying until it answers"
                " (for up to %.0f s)",
                fault,
                self.give_up_after,
            )
        return await backoff.wait()

    def _answered(self) -> None:
        if self._failing_since is not None:
            lasted = asyncio.get_running_loop().time() - self._failing_since
            self._failing_since = None
            log.info("durable: PostgreSQL answers again after %.1f s; writing on", lasted)

    async def _committed(self, number: int) -> bool:
        conn = await self._connection()
        last = await conn.fetchval(self._marker_sql, self.writer_id)
        return last is not None and int(last) >= number

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
