"""How the PostgreSQL writer commits one batch on a connection: the statement jobs as
one pipeline (or one ``combined`` call, or with the call riding on them), the
others in a transaction, and after an SQL error the batch again with a savepoint
per job, so one job's error does not undo the others. ``_pg_writer.py`` queues the
jobs and survives the faults."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg

from durable.journal.records import StoreUnavailable
from durable.store.batch import Ok, settle
from durable.store.postgres.batch import (
    Combined,
    Entry,
    Joined,
    Plain,
    fail_jobs,
    finish_job,
    job_outcomes,
    pipelinable,
    stop_chain,
)

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


def is_transient(exc: BaseException) -> bool:
    """A fault that passes: the connection, the server, or a lock conflict."""
    # InternalClientError: the connection's protocol state broke with it (asyncpg says
    # "another operation is in progress"); a new connection is the cure.
    # StoreUnavailable: the store's connect could not reach the server (yet).
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
    """Commits batches with ``statement`` (the journal's ``append``; its last three
    parameters are ``finish_batch``'s), ``combined``, ``joined`` and ``riders`` (see
    ``PgWriter``)."""

    def __init__(
        self,
        schema: str,
        statement: str,
        combined: Combined | None,
        joined: Joined | None,
        riders: Mapping[str, str],
        plain: Plain | None = None,
    ) -> None:
        self._statement = statement
        self._combined = combined
        self._joined = joined
        self._plain = plain
        self._riders = riders
        self._finish_sql = f"SELECT {schema}.finish_batch($1, $2, $3)"

    def parts(self, segment: list[Entry]) -> list[tuple[list[Entry], tuple[Any, ...] | None]]:
        """A segment's commits: its writes with the riding call that ``riders`` lets
        one statement do with them (and ``combined``'s parameters for the writes), else
        the writes and then each call alone."""
        riding = [entry for entry in segment if entry.rides is not None]
        if not riding or segment[0].call is not None:  # nothing to ride on: a call alone
            return [(segment, None)]
        last = {entry.rides: entry for entry in riding}
        for entry in riding:
            if last[entry.rides] is not entry:
                settle([entry], [Ok(None)])
        calls = list(last.values())
        writes = [entry for entry in segment if entry.rides is None]
        merged = self._merged(writes, calls[0]) if len(calls) == 1 else None
        if merged is not None:
            return [(writes + calls, merged)]
        return [(writes, None)] + [([call], None) for call in calls]

    def _merged(self, writes: list[Entry], call: Entry) -> tuple[Any, ...] | None:
        """``combined``'s parameters for ``writes`` if one statement can do them and
        ``call``, else None."""
        if call.call not in self._riders or self._combined is None or not pipelinable(writes):
            return None
        if any(entry.job is not None or (entry.chain and entry.chain.error) for entry in writes):
            return None
        return self._combined.args([entry.args for entry in writes])

    async def commit(
        self,
        conn: asyncpg.Connection,
        batch: list[Entry],
        marker: tuple[Any, ...],
        merged: tuple[Any, ...] | None = None,
    ) -> list[Any]:
        """The batch's outcomes, one per job; ``marker`` is ``finish_batch``'s parameters,
        ``merged`` what ``parts`` gave with the batch. A transient fault raises (the
        writer asks whether the batch committed); any other SQL error is the outcome
        of the jobs it failed."""
        group = batch[0].group
        if group is not None:  # with its group's jobs only
            return await self._grouped(conn, group, batch, marker)
        if merged is not None:  # the writes and the call riding on them, one statement
            return await self._riding(conn, batch, marker, merged)
        call = batch[0].call
        if call is not None:  # alone in its batch
            try:
                return [Ok(await conn.fetch(call, *batch[0].args, *marker))]
            except asyncpg.PostgresError as exc:
                if is_transient(exc):
                    raise
                return [exc]
        if pipelinable(batch):
            return await self._pipeline(conn, batch, marker)
        try:
            return await self._transaction(conn, batch, marker, savepoints=False)
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            if len(batch) == 1:
                return fail_jobs(batch, exc)
        return await self._transaction(conn, batch, marker, savepoints=True)

    async def _pipeline(
        self, conn: asyncpg.Connection, batch: list[Entry], marker: tuple[Any, ...]
    ) -> list[Any]:
        """One round trip: asyncpg pipelines the statements under one implicit transaction.

        An SQL error undoes them all; they are then run again in a transaction with
        a savepoint each. A refused statement writes nothing and raises nothing.
        """
        stopped, writes = _unstopped(batch)
        if not writes:
            return stopped
        combined = None if self._combined is None else self._combined.args(writes)
        try:
            if combined is not None:
                assert self._combined is not None
                row = await conn.fetchrow(self._combined.sql, *combined, *marker)
                rows = iter(self._combined.rows(row, writes))
            else:
                rows = iter(await self._statements(conn, writes, marker))
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            return await self._transaction(conn, batch, marker, savepoints=True)
        return job_outcomes(batch, stopped, rows)

    async def _riding(
        self,
        conn: asyncpg.Connection,
        batch: list[Entry],
        marker: tuple[Any, ...],
        combined: tuple[Any, ...],
    ) -> list[Any]:
        """The writes (``combined`` are their parameters) and then the call, in one
        statement. An SQL error undoes both: the writes are then committed with a
        savepoint each, and the call fails."""
        writes, call = batch[:-1], batch[-1]
        assert self._combined is not None and call.call is not None
        args = [entry.args for entry in writes]
        try:
            rows = await conn.fetch(self._riders[call.call], *combined, *call.args, *marker)
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            return await self._transaction(conn, writes, marker, savepoints=True) + [exc]
        written = iter(self._combined.rows(rows[0][:3], args))
        return [finish_job(entry, next(written)) for entry in writes] + [
            Ok([row[3:] for row in rows])
        ]

    async def _statements(
        self, conn: asyncpg.Connection, writes: list[tuple[Any, ...]], marker: tuple[Any, ...]
    ) -> list[Any]:
        """The statement once per job, or per joined jobs, in one pipeline: a row a job.
        The plain statement instead where every call allows it (and none notifies)."""
        joined = [(write, 1) for write in writes]
        if self._joined is not None:
            joined = self._joined.join(writes)
        sql, calls = self._statement, [write for write, _ in joined]
        plain = self._plain_calls(calls) if marker[2] is None else None
        if plain is not None:
            assert self._plain is not None
            sql, calls, marker = self._plain.sql, plain, marker[:2]
        unmarked = (None,) * len(marker)
        args = [call + unmarked for call in calls]
        args[-1] = calls[-1] + marker
        if len(args) == 1:  # a pipeline of one costs asyncpg more than one call
            answers = [await conn.fetchrow(sql, *args[0])]
        else:
            answers = await conn.fetchmany(sql, args)
        if self._joined is None:
            return list(answers)
        rows: list[Any] = []
        taken = 0
        for answer, (_, count) in zip(answers, joined, strict=True):
            rows += self._joined.split(answer, writes[taken : taken + count])
            taken += count
        return rows

    def _plain_calls(self, calls: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        if self._plain is None:
            return None
        plain: list[tuple[Any, ...]] = []
        for call in calls:
            args = self._plain.args(call)
            if args is None:
                return None
            plain.append(args)
        return plain

    async def _grouped(
        self, conn: asyncpg.Connection, group: Combined, batch: list[Entry], marker: Any
    ) -> list[Any]:
        stopped, writes = _unstopped(batch)
        if not writes:
            return stopped
        args = group.args(writes)
        assert args is not None
        try:
            rows = iter(group.rows(await conn.fetchrow(group.sql, *args, *marker), writes))
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            return fail_jobs(batch, exc)
        return job_outcomes(batch, stopped, rows)

    async def _transaction(
        self,
        conn: asyncpg.Connection,
        batch: list[Entry],
        marker: tuple[Any, ...],
        savepoints: bool,
    ) -> list[Any]:
        """The batch's jobs in one transaction; one outcome (value or exception) per job.

        A job's refusal (an exception it raises without an SQL error) is its outcome
        and aborts nothing. An SQL error aborts the transaction, unless each job
        has a savepoint of its own.
        """
        outcomes: list[Any] = []
        transaction = conn.transaction()
        await transaction.start()
        try:
            for entry in batch:
                chain = entry.chain
                if chain is not None and chain.error is not None:
                    outcomes.append(chain.error)
                    continue
                outcomes.append(await self._run_job(conn, entry, savepoints))
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
                return await self._call(conn, entry)
            except asyncpg.PostgresError:
                raise
            except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                raise
            except Exception as exc:  # a refusal: nothing was written, the transaction is fine
                stop_chain(entry, exc)
                return exc
        try:
            async with conn.transaction():
                return await self._call(conn, entry)
        except Exception as exc:
            if is_transient(exc):
                raise
            stop_chain(entry, exc)
            return exc

    async def _call(self, conn: asyncpg.Connection, entry: Entry) -> Ok:
        if entry.job is not None:
            return Ok(await entry.job(conn))
        assert entry.finish is not None
        row = await conn.fetchrow(self._statement, *entry.args, None, None, None)
        return Ok(entry.finish(row))


def _unstopped(batch: list[Entry]) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Each job's chain's earlier error (None for none), and the arguments of the jobs
    whose chain has none: the ones to send."""
    stopped = [entry.chain.error if entry.chain else None for entry in batch]
    writes = [entry.args for entry, error in zip(batch, stopped, strict=True) if error is None]
    return stopped, writes
