"""What the PostgreSQL writer's batches are made of: its queued jobs (journal writes,
and async functions of the connection), how the jobs queued in a moment split into
commits, and what each job's outcome is (``commit.py`` commits them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple

import asyncpg

from durable.store.batch import Ok, fail_all
from durable.store.ports import WriteChain
from durable.store.postgres.functions import Write

Job = Callable[[asyncpg.Connection], Awaitable[Any]]


class Entry(NamedTuple):
    """A queued job: an async function of the connection (``job``), or a journal write
    (``write``, whose answer ``finish`` reads). Its caller's future and chain come
    second and third, as ``store.batch.settle`` reads them."""

    job: Job | None
    future: asyncio.Future[Any] | None
    chain: WriteChain | None
    write: Write | None = None
    finish: Callable[[Any], Any] | None = None
    notify: bool = False
    """Other runtimes must hear of it: the commit sends a NOTIFY."""
    guard: str | None = None
    """What the write's SQL checks that only a refusal can prove false (an owner's
    claim): its chain's later writes with the same guard would be refused too."""


MOST_PER_COMMIT = 96
"""Jobs in one commit, at most (and a chain's adjacent jobs together). With many runs
at once, the writer commits one part of them while the event loop runs those of the
commit before, so the server and the loop work at the same time instead of in turn."""


def take(pending: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """The jobs of the next commit, in the order they came, and the rest."""
    cut = MOST_PER_COMMIT
    while cut < len(pending) and _same_chain(pending[cut - 1], pending[cut]):
        cut += 1
    return pending[:cut], pending[cut:]


def _same_chain(before: Entry, entry: Entry) -> bool:
    return entry.chain is not None and entry.chain is before.chain


def pipelinable(batch: list[Entry]) -> bool:
    """Writes only, and a chain's writes after its first all with its guard: a pipeline
    cannot skip a write once one before it is refused, so the SQL must refuse them."""
    guards: dict[int, str | None] = {}
    return all(_joins_pipeline(guards, entry) for entry in batch)


def _joins_pipeline(guards: dict[int, str | None], entry: Entry) -> bool:
    """Whether ``entry`` may follow the writes whose chains' guards are ``guards`` in
    one pipeline; if so, its chain's guard is noted."""
    if entry.job is not None:
        return False
    if entry.chain is not None:
        key = id(entry.chain)
        if key in guards and (guards[key] is None or guards[key] != entry.guard):
            return False
        guards[key] = entry.guard
    return True


def parts(batch: list[Entry]) -> list[list[Entry]]:
    """The batch in the order it came: its adjacent writes that may share a pipeline
    together, every other job alone."""
    split: list[list[Entry]] = []
    guards: dict[int, str | None] = {}
    for entry in batch:
        if split and split[-1][0].job is None and _joins_pipeline(guards, entry):
            split[-1].append(entry)
        else:
            split.append([entry])
            guards = {}
            _joins_pipeline(guards, entry)
    return split


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
