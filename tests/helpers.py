"""Small async helpers: wait on journal state with a deadline, never a fixed sleep; and,
in one place, the few reaches into the stores' private parts that some tests need."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pytest

import durable
from durable.store.sqlite import writer as sqlite_writer
from durable.store.sqlite.store import SqliteStore

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s (last value {value!r})")
        await asyncio.sleep(0.005)


async def timers_caught_up(rt: durable.Runtime) -> None:
    """Return once the runtime's timers have fired all that is due now: a probe timer
    due now has fired, and timers fire in deadline order."""
    fired = asyncio.Event()
    rt.timers.call_at(rt.clock.now(), fired.set)
    await asyncio.wait_for(fired.wait(), 5)


async def status_is(rt: durable.Runtime, run_id: str, status: str) -> durable.RunInfo:
    """The run once it has ``status`` (it may not exist yet: a child about to start)."""

    async def check() -> durable.RunInfo | None:
        try:
            info = await rt.get_run(run_id)
        except durable.RunNotFound:
            return None
        return info if info.status == status else None

    return await until(check)


async def kinds(rt: durable.Runtime, run_id: str) -> list[tuple[int | None, str, str]]:
    return [(e["position"], e["kind"], e["name"]) for e in await rt.history(run_id)]


# -- The tests' only reaches into the stores' private parts ---------------------
# Each stages or observes something below the store's methods that no public
# behaviour shows: a connection lost mid-call, a fault outlasting the writer's
# retries, the number of queries a batch of reads takes, the writer's memory.
# They are here, and nowhere else, so that a change to those parts has one place
# to mend in the tests.

C = TypeVar("C")


def sqlite_give_up_after(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make the SQLite writers give up on a passing fault (the write lock held
    elsewhere, a full disk) after ``seconds`` instead of 30, until ``monkeypatch``
    is undone: a test of what follows the giving up cannot wait half a minute, and
    the SQLite writers keep that time as a module setting, not an option."""
    monkeypatch.setattr(sqlite_writer, "_GIVE_UP_AFTER", seconds)


Read = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


def route_sqlite_reads(
    monkeypatch: pytest.MonkeyPatch,
    around: Callable[[Read, str, Sequence[Any]], Awaitable[list[Any]]],
) -> None:
    """Send every query of every SQLite store's reader through ``around(read, sql,
    params)`` (``read`` runs it), until ``monkeypatch`` is undone: to count the
    queries a batch of reads takes, or to fail one. Every read of ``SqliteStore``
    goes through its one ``_fetchall``; nothing public shows how reads are batched."""
    real = SqliteStore._fetchall

    async def routed(self: SqliteStore, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await around(functools.partial(real, self), sql, params)

    monkeypatch.setattr(SqliteStore, "_fetchall", routed)


def sqlite_runs_remembered(store: object) -> int:
    """How many runs the SQLite writer's memory of runs (last seq, owner) holds: its
    bound is a limit on memory that no public behaviour shows."""
    assert isinstance(store, SqliteStore)
    return len(store._memory._last)


@overload
async def postgres_writers_connection(writer: Any) -> asyncpg.Connection: ...


@overload
async def postgres_writers_connection(
    writer: Any, wrap: Callable[[asyncpg.Connection], C]
) -> C: ...


async def postgres_writers_connection(
    writer: Any, wrap: Callable[[asyncpg.Connection], C] | None = None
) -> asyncpg.Connection | C:
    """The PostgreSQL writer's connection, or ``wrap(it)`` put in its place: a
    connection lost mid-call (sent or not, its answer lost), or what a batch sends,
    can only be staged or seen between the writer and its connection; a proxy that
    resets sockets (``pg_outage.py``) cannot break one call at a chosen moment."""
    conn = await writer._connection()
    if wrap is None:
        return conn
    wrapped = wrap(conn)
    writer._conn = wrapped
    return wrapped


def commits(rt: durable.Runtime) -> int:
    """How many transactions the runtime's journal writer has committed so far: both
    stores' writers count their batches (``writer.batches``), and how many commits a
    run's writes take is what group commit is for, shown by no public behaviour."""
    writer: Any = rt.store.writer  # type: ignore[attr-defined]
    return int(writer.batches)
