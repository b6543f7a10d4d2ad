"""What the PostgreSQL writer's batches are made of: its queued jobs, the statements
that do many of them at once, and how the jobs queued in a moment split into batches
(``_pg_writer.py`` commits them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, NamedTuple

import asyncpg

from durable.store.batch import Ok, fail_all
from durable.store.ports import WriteChain

Job = Callable[[asyncpg.Connection], Awaitable[Any]]


class Combined(NamedTuple):
    """One statement that can do the work of a whole pipeline of statement jobs: a
    call per batch instead of one per job, where every job of the batch allows it."""

    sql: str
    """Its last three parameters are ``finish_batch``'s, as the statement's are."""
    args: Callable[[list[tuple[Any, ...]]], tuple[Any, ...] | None]
    """Its parameters for the jobs' arguments; None when they do not allow it."""
    rows: Callable[[Any, list[tuple[Any, ...]]], list[Any]]
    """Its answer as one row per job, as the statement would have answered each."""


class Joined(NamedTuple):
    """How adjacent statement jobs become one statement (a step's end and the next
    step's start: one call of the statement, not two)."""

    join: Callable[[list[tuple[Any, ...]]], list[tuple[tuple[Any, ...], int]]]
    """The statements to send for the jobs' arguments, each with how many jobs it does."""
    split: Callable[[Any, list[tuple[Any, ...]]], list[Any]]
    """One joined statement's row as one row per job it does."""


class Plain(NamedTuple):
    """A plain statement that does a statement job's work where its arguments allow
    it, for less of the server's time than the statement (a function call) takes."""

    sql: str
    """Its last two parameters are ``finish_batch``'s writer and batch."""
    args: Callable[[tuple[Any, ...]], tuple[Any, ...] | None]
    """Its parameters for a job's arguments; None when they do not allow it."""


class Entry(NamedTuple):
    """A queued job; its caller's future and chain first, as ``_batch.settle`` reads them."""

    job: Job | None
    future: asyncio.Future[Any] | None
    chain: WriteChain | None
    args: tuple[Any, ...] = ()
    finish: Callable[[Any], Any] | None = None
    notify: bool = False
    guard: str | None = None
    call: str | None = None
    group: Combined | None = None
    rides: Hashable | None = None


MOST_PER_COMMIT = 96
"""Jobs in one commit, at most (and a chain's adjacent jobs together). With many runs
at once, the writer commits one part of them while the event loop runs those of the
commit before, so the server and the loop work at the same time instead of in turn:
in (b), 100 workflows of 20 steps at once, 13.6-14.0k steps/s against 9.4-10.4k with
every queued job in one commit (bench/NOTES.md)."""


def take(pending: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """The jobs of the next commit, in the order they came, and the rest."""
    cut = MOST_PER_COMMIT
    while cut < len(pending) and _same_chain(pending[cut - 1], pending[cut]):
        cut += 1
    return pending[:cut], pending[cut:]


def _same_chain(before: Entry, entry: Entry) -> bool:
    return entry.chain is not None and entry.chain is before.chain


def segments(pending: list[Entry]) -> list[list[Entry]]:
    """The batches to commit: a group's jobs next to each other together, the jobs
    between them together with the riding calls among them, in the order they came;
    then each other call alone (a call is no write of a chain, and splitting the
    others' batch for it would cost a commit)."""
    batches: list[list[Entry]] = []
    calls: list[list[Entry]] = []
    for entry in pending:
        last = batches[-1] if batches else None
        if entry.call is not None:
            if entry.rides is not None and last is not None and last[0].group is None:
                last.append(entry)
            else:
                calls.append([entry])
        elif last is not None and last[0].group is entry.group:
            last.append(entry)
        else:
            batches.append([entry])
    return batches + calls


def pipelinable(batch: list[Entry]) -> bool:
    """Statements only, and a chain's statements after its first all with its guard:
    a pipeline cannot skip a statement once one before it is refused."""
    guards: dict[int, str | None] = {}
    for entry in batch:
        if entry.job is not None:
            return False
        if entry.chain is not None:
            key = id(entry.chain)
            if key in guards and (guards[key] is None or guards[key] != entry.guard):
                return False
            guards[key] = entry.guard
    return True


def fail_jobs(batch: list[Entry], error: Exception) -> list[Any]:
    return fail_all((entry.chain for entry in batch), error)


def job_outcomes(batch: list[Entry], stopped: list[Any], rows: Iterator[Any]) -> list[Any]:
    """Each job's outcome: its chain's earlier error, or what its row says."""
    return [
        finish_job(entry, next(rows)) if error is None else error
        for entry, error in zip(batch, stopped, strict=True)
    ]


def finish_job(entry: Entry, row: Any) -> Any:
    assert entry.finish is not None
    try:
        return Ok(entry.finish(row))
    except Exception as exc:  # a refusal
        stop_chain(entry, exc)
        return exc


def stop_chain(entry: Entry, error: Exception) -> None:
    if entry.chain is not None and entry.chain.error is None:
        entry.chain.error = error
