"""Group commit: ordering, isolation of a failing job, and a failed batch losing nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from durable._store import _writer
from durable._store.base import NewEvent, RunRecord
from durable._store.sqlite import SqliteStore

pytestmark = pytest.mark.parametrize("writer", ["loop", "thread"])


def run(run_id: str) -> RunRecord:
    return RunRecord(run_id, "wf", "1", "running", "{}", "d", None, None, "me", None, 0.0, 0.0)


def event(run_id: str, position: int) -> NewEvent:
    return NewEvent(run_id, position, "step.started", "s", "{}", 0.0)


async def open_store(db: Path, writer: str) -> SqliteStore:
    store = SqliteStore(db, "normal", writer)
    await store.open()
    for run_id in ("a", "b", "c"):
        await store.create_run(run(run_id))
    return store


async def test_writes_commit_in_call_order_per_run(db: Path, writer: str) -> None:
    store = await open_store(db, writer)
    try:

        async def write_run(run_id: str) -> None:
            pending = [store.append(run_id, [event(run_id, i)]) for i in range(50)]
            await asyncio.gather(*pending)

        await asyncio.gather(*(write_run(r) for r in ("a", "b", "c")))
        journals = await store.load_events(["a", "b", "c"])
    finally:
        await store.close()
    for events in journals.values():
        assert [e.position for e in events] == list(range(50))
    assert store.writer.batches < store.writer.jobs  # writes were grouped


async def test_a_failing_job_fails_alone(db: Path, writer: str) -> None:
    store = await open_store(db, writer)

    def guard(record: RunRecord, events: object) -> None:
        raise ValueError("refused")

    try:
        writes = [
            store.append("a", [event("a", 0)]),
            store.append("b", [event("b", 0)], guard=guard),
            store.append("c", [event("c", 0)]),
        ]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        journals = await store.load_events(["a", "b", "c"])
    finally:
        await store.close()
    assert isinstance(outcomes[1], ValueError)
    assert [len(journals[r]) for r in ("a", "b", "c")] == [1, 0, 1]


async def test_a_batch_that_cannot_commit_fails_its_callers_and_loses_nothing_before(
    db: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(db, writer)
    try:
        await store.append("a", [event("a", 0)])
        monkeypatch.setattr(_writer, "_BUSY_GIVE_UP_AFTER", 0.0)

        def locked(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database is locked")

        failing = [store.writer.submit(locked), store.append("a", [event("a", 1)])]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
        monkeypatch.undo()
        await store.append("a", [event("a", 2)])
        positions = [e.position for e in (await store.load_events(["a"]))["a"]]
    finally:
        await store.close()
    assert positions == [0, 2]
