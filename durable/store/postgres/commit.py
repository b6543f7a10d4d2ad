"""How the PostgreSQL writer commits one batch on a connection, in one transaction: its
journal writes as pipelines of ``append`` calls (a batch of writes only is one
pipeline, one round trip), its other jobs one by one between them, and after an SQL
error the batch again with a savepoint per job, so one job's error does not undo the
others. Each batch also records its number with ``finish_batch``, in the same
transaction. ``writer.py`` queues the jobs and survives the faults."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from durable.journal.records import StoreUnavailable
from durable.store.batch import Ok
from durable.store.postgres.batch import (
    Entry,
    fail_jobs,
    job_outcomes,
    parts,
    pipelinable,
    stop_chain,
)
from durable.store.postgres.functions import joined, split_rows

_RETRYABLE_STATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown (pg_terminate_backend, a server restart)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (the server is starting)
        "08000",
        "08003",
        "08006",
    }
)


_UNMARKED = (None, None, None)
"""``finish_batch``'s parameters for every call but the batch's last."""


def is_transient(exc: BaseException) -> bool:
    """A fault that passes: the connection, the server, or a lock conflict."""
    # InternalClientError: the connection's protocol state broke with it (asyncpg says
    # "another operation is in progress"); a new connection is the cure.
    # StoreUnavailable: the store's connect could not reach the server (yet).
    if isinstance(exc, ValueError):  # a value asyncpg cannot encode: it stays so
        return False
    broken = (
        OSError,
        asyncio.TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        StoreUnavailable,
    )
    if isinstance(exc, broken):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _RETRYABLE_STATES


class Committer:
    """Commits batches; ``append_sql`` calls ``append`` and then ``finish_batch``, whose
    three parameters (the writer, the batch's number, the channel to notify or null:
    the batch's marker) are its last."""

    def __init__(self, schema: str, append_sql: str) -> None:
        self._append_sql = append_sql
        self._finish_sql = f"SELECT {schema}.finish_batch($1, $2, $3)"

    async def commit(
        self, conn: asyncpg.Connection, batch: list[Entry], marker: tuple[Any, ...]
    ) -> list[Any]:
        """The batch's outcomes, one per job. A transient fault raises (the writer asks
        whether the batch committed); any other SQL error undoes the batch, which is
        then run again with a savepoint per job: the error is the outcome of the jobs
        it failed."""
        try:
            if pipelinable(batch):  # writes only: one round trip, an implicit transaction
                return await self._writes(conn, batch, marker)
            return await self._transaction(conn, batch, marker, savepoints=False)
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            if len(batch) == 1:
                return fail_jobs(batch, exc)
        return await self._transaction(conn, batch, marker, savepoints=True)

    async def _writes(
        self, conn: asyncpg.Connection, batch: list[Entry], marker: tuple[Any, ...] = _UNMARKED
    ) -> list[Any]:
        """The writes as one pipeline of ``append`` calls, the last one with ``marker``
        (a pipeline alone commits as one implicit transaction). A write whose chain has
        failed is not sent; a refused write writes nothing and raises nothing."""
        stopped = [entry.chain.error if entry.chain else None for entry in batch]
        writes = [
            entry.write
            for entry, error in zip(batch, stopped, strict=True)
            if error is None and entry.write is not None
        ]
        if not writes:
            return stopped
        calls = joined(writes)
        args = [(*call.write, *_UNMARKED) for call in calls]
        args[-1] = (*calls[-1].write, *marker)
        if len(args) == 1:  # a pipeline of one costs asyncpg more than one call
            rows = [await conn.fetchrow(self._append_sql, *args[0])]
        else:
            rows = list(await conn.fetchmany(self._append_sql, args))
        return job_outcomes(batch, stopped, split_rows(calls, rows))

    async def _transaction(
        self,
        conn: asyncpg.Connection,
        batch: list[Entry],
        marker: tuple[Any, ...],
        savepoints: bool,
    ) -> list[Any]:
        """The batch's jobs in one transaction, its writes between other jobs each as
        one pipeline; one outcome (value or exception) per job.

        A job's refusal (an exception it raises without an SQL error) is its outcome
        and aborts nothing. An SQL error aborts the transaction, unless each job
        has a savepoint of its own.
        """
        outcomes: list[Any] = []
        transaction = conn.transaction()
        await transaction.start()
        try:
            for part in [[entry] for entry in batch] if savepoints else parts(batch):
                if part[0].job is None and not savepoints:
                    outcomes += await self._writes(conn, part)
                    continue
                chain = part[0].chain
                if chain is not None and chain.error is not None:
                    outcomes.append(chain.error)
                    continue
                outcomes.append(await self._run_job(conn, part[0], savepoints))
            await conn.execute(self._finish_sql, *marker)
        except BaseException:
            if not conn.is_closed():
                try:
                    await transaction.rollback()
                except Exception:
                    conn.terminate()
            raise
        await transaction.commit()
        return outcomes

    async def _run_job(self, conn: asyncpg.Connection, entry: Entry, savepoint: bool) -> Any:
        if not savepoint:
            try:
                return Ok(await self._call(conn, entry))
            except asyncpg.PostgresError:
                raise
            except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                raise
            except Exception as exc:  # a refusal: nothing was written, the transaction is fine
                stop_chain(entry, exc)
                return exc
        try:
            async with conn.transaction():
                return Ok(await self._call(conn, entry))
        except Exception as exc:
            if is_transient(exc):
                raise
            stop_chain(entry, exc)
            return exc

    async def _call(self, conn: asyncpg.Connection, entry: Entry) -> Any:
        if entry.job is not None:
            return await entry.job(conn)
        assert entry.write is not None and entry.finish is not None
        return entry.finish(await conn.fetchrow(self._append_sql, *entry.write, None, None, None))
