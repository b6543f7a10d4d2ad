"""Group commit on PostgreSQL: every journal write queued in a moment, one transaction.

The same contract as the SQLite writers (``_writer.py``): callers submit jobs
(async functions of the connection) and await a future; jobs queued while a
batch commits form the next batch; one job's SQL error does not undo the
others (the batch is run again with a savepoint per job); jobs of one
``WriteChain`` commit in order and none after one has failed.

Faults are survived, not reported: a lost connection or a restarting server
before the commit was sent is retried on a new connection, with backoff, for
up to ``give_up_after`` seconds; a deadlock or serialization failure likewise.
A connection lost while the commit was in flight leaves its outcome unknown:
those writes fail with ``StoreUnavailable`` (their runs are let go and
claimed again from what the journal holds), never retried blindly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from .base import StoreUnavailable, WriteChain

T = TypeVar("T")
Job = Callable[[asyncpg.Connection], Awaitable[Any]]
log = logging.getLogger("durable")

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
    broken = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    if isinstance(exc, broken):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _RETRYABLE_STATES


class _Entry:
    __slots__ = ("chain", "future", "job", "notify")

    def __init__(
        self, job: Job, future: asyncio.Future[Any] | None, chain: WriteChain | None, notify: bool
    ) -> None:
        self.job = job
        self.future = future
        self.chain = chain
        self.notify = notify


class PgWriter:
    """One connection that commits batches of jobs; ``connect`` makes a new one."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        notify: Callable[[asyncpg.Connection], Awaitable[None]],
        give_up_after: float = 30.0,
    ) -> None:
        self._connect = connect
        self._send_notify = notify
        self.give_up_after = give_up_after
        self._conn: asyncpg.Connection | None = None
        self._pending: list[_Entry] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        self.jobs = 0

    async def start(self) -> None:
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="durable-pg-writer")

    def submit(self, job: Job, chain: WriteChain | None = None, notify: bool = False) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._task is None or self._stopping:
            future.set_exception(RuntimeError("the journal writer is not running"))
            return future
        self._queue(_Entry(job, future, chain, notify))
        return future

    def submit_nowait(self, job: Job, chain: WriteChain) -> None:
        if self._task is None or self._stopping:
            chain.error = chain.error or RuntimeError("the journal writer is not running")
            return
        self._queue(_Entry(job, None, chain, False))

    def _queue(self, entry: _Entry) -> None:
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
            self._conn.terminate() if self._conn.is_closed() else await self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                outcomes = await self._commit_surviving_faults(batch)
                self.batches += 1
                self.jobs += len(batch)
                _resolve(batch, outcomes)
            if self._stopping:
                return

    async def _commit_surviving_faults(self, batch: list[_Entry]) -> list[Any]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = 0.01
        while True:
            try:
                conn = await self._connection()
                return await _commit(conn, batch, self._send_notify)
            except _CommitUnknown as unknown:
                self._drop_connection()
                error = StoreUnavailable(
                    f"the connection to PostgreSQL broke while a commit was in flight"
                    f" ({unknown.__cause__}); the run is claimed again from its journal"
                )
                return _fail(batch, error)
            except Exception as exc:
                if not is_transient(exc):
                    return _fail(batch, exc)
                self._drop_connection()
                if self._stopping or loop.time() - started > self.give_up_after:
                    return _fail(batch, StoreUnavailable(f"PostgreSQL did not answer: {exc}"))
                log.warning("durable: PostgreSQL write failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


class _CommitUnknown(Exception):
    """The connection failed during COMMIT: the transaction may or may not have committed."""


async def _commit(
    conn: asyncpg.Connection,
    batch: list[_Entry],
    send_notify: Callable[[asyncpg.Connection], Awaitable[None]],
) -> list[Any]:
    """Run the batch's jobs in one transaction; one outcome (value or exception) per job.

    A job's refusal (an exception it raises without an SQL error) is its outcome
    and aborts nothing. An SQL error aborts the transaction: it is then run
    again with a savepoint per job, so that only the failing job fails.
    """
    try:
        return await _run_batch(conn, batch, send_notify, savepoints=False)
    except asyncpg.PostgresError as exc:
        if is_transient(exc):
            raise
        if len(batch) == 1:
            return _fail(batch, exc)
    return await _run_batch(conn, batch, send_notify, savepoints=True)


async def _run_batch(
    conn: asyncpg.Connection,
    batch: list[_Entry],
    send_notify: Callable[[asyncpg.Connection], Awaitable[None]],
    savepoints: bool,
) -> list[Any]:
    outcomes: list[Any] = []
    transaction = conn.transaction()
    await transaction.start()
    try:
        for entry in batch:
            chain = entry.chain
            if chain is not None and chain.error is not None:
                outcomes.append(chain.error)
                continue
            outcomes.append(await _run_job(conn, entry, savepoints))
        if any(entry.notify for entry in batch):
            await send_notify(conn)
    except BaseException:
        if not conn.is_closed():
            try:
                await transaction.rollback()
            except Exception:
                conn.terminate()
        raise
    try:
        await transaction.commit()
    except Exception as exc:
        if is_transient(exc):
            raise _CommitUnknown() from exc
        raise
    return outcomes


async def _run_job(conn: asyncpg.Connection, entry: _Entry, savepoint: bool) -> Any:
    if not savepoint:
        try:
            return _Ok(await entry.job(conn))
        except asyncpg.PostgresError:
            raise
        except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError):
            raise
        except Exception as exc:  # a refusal: nothing was written, the transaction is fine
            _stop_chain(entry, exc)
            return exc
    try:
        async with conn.transaction():
            return _Ok(await entry.job(conn))
    except Exception as exc:
        if is_transient(exc):
            raise
        _stop_chain(entry, exc)
        return exc


def _stop_chain(entry: _Entry, error: Exception) -> None:
    if entry.chain is not None and entry.chain.error is None:
        entry.chain.error = error


class _Ok:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _fail(batch: list[_Entry], error: Exception) -> list[Any]:
    for entry in batch:
        if entry.chain is not None and entry.chain.error is None:
            entry.chain.error = error
    return [error] * len(batch)


def _resolve(batch: list[_Entry], outcomes: list[Any]) -> None:
    for entry, outcome in zip(batch, outcomes, strict=True):
        if entry.chain is not None:
            entry.chain.unsettled -= 1
        future = entry.future
        if future is None or future.done():
            continue
        if isinstance(outcome, _Ok):
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome)
