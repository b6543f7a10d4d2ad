"""Group commit: every journal write queued in a moment is committed in one transaction.

Callers submit small jobs (functions of the write connection) and await a
future. A writer runs all the jobs waiting at once in one transaction,
commits once, and resolves every future; one job's error does not undo the
others. Jobs submitted with the same ``WriteChain`` (one run's writes) commit
in submit order, and none of them commits after one has failed, so a run's
journal never has a hole even when its caller did not wait for a write.
Two writers share that batch logic:

- ``LoopWriter`` commits on the event loop thread, at the end of the loop
  iteration in which the jobs were queued (at once when its caller waits
  and nothing else is ready to run, so nothing could join the batch): no
  thread hop at all. A commit at ``synchronous=NORMAL`` does not fsync, so
  it costs microseconds; a busy database is retried later with
  ``call_later``, never waited for.
- ``ThreadWriter`` commits on a thread of its own, one hop per batch: for
  ``synchronous=FULL``, whose fsync per commit must not stall the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from durable.journal.records import StoreUnavailable
from durable.store.batch import Ok, fail_all, settle
from durable.store.ports import WriteChain

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
Entry = tuple[Job, "asyncio.Future[Any] | None", WriteChain | None]

_RETRY_DELAY = 0.005
_GIVE_UP_AFTER = 30.0
"""How long a passing fault (the write lock held elsewhere, a full disk) is retried
before the batch fails with ``StoreUnavailable`` (its runs are then let go and
claimed again, with backoff, until the journal can be written)."""


class Writer(Protocol):
    batches: int
    jobs: int

    def start(self) -> None: ...

    def submit(
        self, job: Callable[[sqlite3.Connection], T], chain: WriteChain | None = None
    ) -> asyncio.Future[T]:
        """Queue ``job``; the future gives its outcome once its batch is committed."""
        ...

    def submit_nowait(self, job: Job, chain: WriteChain) -> None:
        """Queue ``job`` for a caller that does not wait: a failure is kept in ``chain``."""
        ...

    async def data_version(self) -> int:
        """``PRAGMA data_version`` on the writer's connection: it moves when another
        connection commits, and never for this writer's own commits."""
        ...

    async def stop(self) -> None: ...


class Hooks(Protocol):
    """Told of the writer's transactions, for whatever its jobs remember between them."""

    def began(self, conn: sqlite3.Connection) -> None:
        """A transaction began (the write lock is held), before any of its jobs ran."""
        ...

    def rolled_back(self) -> None:
        """Some writes of this transaction were undone (a job's, or all of them)."""
        ...


class _NoHooks:
    def began(self, conn: sqlite3.Connection) -> None:
        pass

    def rolled_back(self) -> None:
        pass


NO_HOOKS: Hooks = _NoHooks()


_PASSING = ("locked", "busy", "disk is full", "disk I/O error")


def is_passing(exc: BaseException) -> bool:
    """A fault that passes: another process holds the write lock, or the disk is full."""
    return isinstance(exc, sqlite3.OperationalError) and any(part in str(exc) for part in _PASSING)


def given_up(exc: Exception) -> Exception:
    """What the jobs of a batch that could not commit fail with."""
    if not is_passing(exc):
        return exc
    return StoreUnavailable(
        f"the journal could not be written for {_GIVE_UP_AFTER:g} s ({exc}): free disk space,"
        " or stop what holds its write lock; runs go on once it can be written"
    )


def commit_batch(
    conn: sqlite3.Connection, batch: list[Entry], hooks: Hooks = NO_HOOKS
) -> list[Any]:
    """Run every job in one transaction; one outcome (value or exception) per job.

    Jobs run plainly first; only if one raises is the transaction rolled back
    and run again with a savepoint per job, so that one job's error does not
    undo the others. A job whose chain has failed is not run: its outcome is
    the chain's error. Raises only when the whole batch could not be committed
    (a busy database, a failing disk); then nothing of it was written.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        hooks.began(conn)
        outcomes = [
            chain.error if chain is not None and chain.error else Ok(job(conn))
            for job, _, chain in batch
        ]
        conn.execute("COMMIT")
        return outcomes
    except Exception as exc:
        if conn.in_transaction:
            conn.rollback()
        hooks.rolled_back()
        if is_passing(exc):
            raise
        if len(batch) == 1:
            return fail_batch(batch, exc)
    return _commit_with_savepoints(conn, batch, hooks)


def _commit_with_savepoints(
    conn: sqlite3.Connection, batch: list[Entry], hooks: Hooks
) -> list[Any]:
    outcomes: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        hooks.began(conn)
        for job, _, chain in batch:
            if chain is not None and chain.error:
                outcomes.append(chain.error)
                continue
            conn.execute("SAVEPOINT job")
            try:
                outcome: Any = Ok(job(conn))
            except Exception as exc:
                if is_passing(exc):
                    raise
                conn.execute("ROLLBACK TO job")
                hooks.rolled_back()
                outcome = exc
                if chain is not None:
                    chain.error = exc
            conn.execute("RELEASE job")
            outcomes.append(outcome)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        hooks.rolled_back()
        raise
    return outcomes


def read_data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def fail_batch(batch: list[Entry], error: Exception) -> list[Any]:
    return fail_all((chain for _, _, chain in batch), error)


class LoopWriter:
    """Commits on the event loop thread, once per loop iteration with writes."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], hooks: Hooks = NO_HOOKS) -> None:
        self._connect = connect
        self._hooks = hooks
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Entry] = []
        self._flush_handle: asyncio.Handle | None = None  # a flush is scheduled
        self._busy_since: float | None = None
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        self._conn = self._connect()
        self._conn.execute("PRAGMA busy_timeout = 0")

    def submit(
        self, job: Callable[[sqlite3.Connection], T], chain: WriteChain | None = None
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._conn is None:
            future.set_exception(RuntimeError("the journal writer is not running"))
            return future
        self._queue((job, future, chain))
        if self._busy_since is None and _nothing_else_ready(loop, self._flush_handle):
            # No other callback would run before a deferred flush, so no other write
            # could join this batch: commit now, and the caller's await does not yield.
            self._flush()
        elif self._flush_handle is None:
            self._schedule_flush(loop)
        return future

    def submit_nowait(self, job: Job, chain: WriteChain) -> None:
        if self._conn is None:
            chain.error = chain.error or RuntimeError("the journal writer is not running")
            return
        self._queue((job, None, chain))
        if self._flush_handle is None:
            self._schedule_flush(asyncio.get_running_loop())

    async def data_version(self) -> int:
        if self._conn is None:
            raise RuntimeError("the journal writer is not running")
        return read_data_version(self._conn)  # outside any transaction: between flushes

    def _queue(self, entry: Entry) -> None:
        if entry[2] is not None:
            entry[2].unsettled += 1
        self._pending.append(entry)

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_handle = loop.call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self._flush_handle = None
        self._flush()

    def _flush(self) -> None:
        """Commit what is queued. A deferred flush still scheduled stays scheduled and
        commits what is queued after this, or nothing: cancelled, it would stay in the
        loop's queue all the same, and the next write could not see that only our own
        flush waits there (a step of a sequential workflow then yielded every other time)."""
        batch, self._pending = self._pending, []
        if not batch or self._conn is None:
            return
        try:
            outcomes = commit_batch(self._conn, batch, self._hooks)
        except Exception as exc:
            if is_passing(exc) and self._retry_later(batch):
                return
            outcomes = fail_batch(batch, given_up(exc))
        self._busy_since = None
        self.batches += 1
        self.jobs += len(batch)
        settle(batch, outcomes)

    def _retry_later(self, batch: list[Entry]) -> bool:
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        if now - self._busy_since > _GIVE_UP_AFTER:
            return False
        self._pending = batch + self._pending
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(_RETRY_DELAY, self._deferred_flush)
        return True

    async def stop(self) -> None:
        while self._pending and self._conn is not None:
            self._flush()
            if self._pending:
                await asyncio.sleep(_RETRY_DELAY)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _nothing_else_ready(loop: asyncio.AbstractEventLoop, ours: asyncio.Handle | None) -> bool:
    """True when no callback but our own deferred flush waits to run in this iteration
    (asyncio's own loops only)."""
    ready = getattr(loop, "_ready", None)
    if ready is None:
        return False
    return len(ready) == 0 or (len(ready) == 1 and ready[0] is ours)


class ThreadWriter:
    """Commits on its own thread: one hop to it and one back per batch."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], hooks: Hooks = NO_HOOKS) -> None:
        self._connect = connect
        self._hooks = hooks
        self._queue: queue.SimpleQueue[
            tuple[Job, asyncio.Future[Any] | None, WriteChain | None, asyncio.AbstractEventLoop]
            | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="durable-writer", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping = False
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(
        self, job: Callable[[sqlite3.Connection], T], chain: WriteChain | None = None
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._running:
            future.set_exception(RuntimeError("the journal writer is not running"))
            return future
        if chain is not None:
            chain.unsettled += 1
        self._queue.put((job, future, chain, loop))
        return future

    def submit_nowait(self, job: Job, chain: WriteChain) -> None:
        if not self._running:
            chain.error = chain.error or RuntimeError("the journal writer is not running")
            return
        chain.unsettled += 1
        self._queue.put((job, None, chain, asyncio.get_running_loop()))

    async def data_version(self) -> int:
        """Read on the writer's thread between batches, outside any transaction."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self._running:
            raise RuntimeError("the journal writer is not running")
        self._queue.put((read_data_version, future, None, asyncio.get_running_loop()))
        return await future

    @property
    def _running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    async def stop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            reads = [item for item in batch if item[0] is read_data_version]
            if reads:
                self._read(conn, reads)
            if len(reads) < len(batch):
                self._commit(conn, [item for item in batch if item[0] is not read_data_version])
        conn.close()

    def _read(self, conn: sqlite3.Connection, items: list[Any]) -> None:
        for job, future, _, loop in items:
            try:
                outcome: Any = Ok(job(conn))
            except Exception as exc:
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, [(job, future, None)], [outcome])

    def _commit(self, conn: sqlite3.Connection, items: list[Any]) -> None:
        batch: list[Entry] = [(job, future, chain) for job, future, chain, _ in items]
        started = time.monotonic()
        while True:
            try:
                outcomes = commit_batch(conn, batch, self._hooks)
                break
            except Exception as exc:
                if not is_passing(exc) or time.monotonic() - started > _GIVE_UP_AFTER:
                    outcomes = fail_batch(batch, given_up(exc))
                    break
                time.sleep(_RETRY_DELAY)
        self.batches += 1
        self.jobs += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, tuple[list[Entry], list[Any]]] = {}
        for (_, _, _, loop), entry, outcome in zip(items, batch, outcomes, strict=True):
            entries, results = by_loop.setdefault(loop, ([], []))
            entries.append(entry)
            results.append(outcome)
        for loop, (entries, results) in by_loop.items():
            # RuntimeError: the loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, entries, results)
