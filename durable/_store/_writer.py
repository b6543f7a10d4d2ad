"""Group commit: one thread owns the write connection and commits many jobs at once.

Callers from the event loop submit small jobs (functions of the connection)
and await a future. The thread takes every job waiting in its queue, runs
them in one transaction, each inside its own savepoint so one job's error
does not undo the others, commits once, and wakes all callers with a single
hop back to the loop. A write costs a queue put and a share of one commit,
never a thread round trip of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

_RETRY_LIMIT = 50
_RETRY_DELAY = 0.02


class Writer:
    """A thread that runs write jobs in batches on its own connection."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[
            tuple[Job, asyncio.Future[Any], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="durable-writer", daemon=True)
        self._started = False
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        self._started = True
        self._thread.start()

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        return future

    async def stop(self) -> None:
        if not self._started:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._started = False

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
        except BaseException as exc:  # report the failure to every caller
            error: BaseException = exc
        else:
            error = RuntimeError("the journal writer has stopped")
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            if conn is None:
                _deliver(batch, [error] * len(batch))
            else:
                _deliver(batch, self._commit(conn, batch))
            if stop:
                break
        if conn is not None:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> list[Any]:
        self.batches += 1
        self.jobs += len(batch)
        for attempt in range(_RETRY_LIMIT):
            try:
                return _run_batch(conn, batch)
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.rollback()
                if not _is_busy(exc) or attempt == _RETRY_LIMIT - 1:
                    return [exc] * len(batch)
                time.sleep(_RETRY_DELAY)
            except BaseException as exc:
                if conn.in_transaction:
                    conn.rollback()
                return [exc] * len(batch)
        raise AssertionError("unreachable")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _run_batch(conn: sqlite3.Connection, batch: list[Any]) -> list[Any]:
    outcomes: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    for job, _, _ in batch:
        conn.execute("SAVEPOINT job")
        try:
            outcome = job(conn)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise
            conn.execute("ROLLBACK TO job")
            outcome = exc
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            outcome = exc
        conn.execute("RELEASE job")
        outcomes.append(_Ok(outcome) if not isinstance(outcome, BaseException) else outcome)
    conn.execute("COMMIT")
    return outcomes


class _Ok:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _deliver(batch: list[Any], outcomes: list[Any]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, pairs in by_loop.items():
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in pairs:
        if future.done():
            continue
        if isinstance(outcome, _Ok):
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome)
