"""The Store protocol's conformance suite, shared by its modules: a store on each
backend, and records to write to it.

A backend added later runs the suite by joining the ``backend`` parameter in conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from durable.journal.records import NewEvent, RunRecord
from durable.store import open_store
from durable.store.ports import Store


@pytest_asyncio.fixture
async def store(db: Path | str) -> AsyncIterator[Store]:
    opened = open_store(db, "normal", None, 0.05)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def run(
    run_id: str, owner: str | None = None, workflow: str = "wf", created: float = 0.0
) -> RunRecord:
    status = "pending" if owner is None else "running"
    return RunRecord(
        run_id, workflow, "1", status, "{}", "d", None, None, owner, None, created, created
    )


def step(run_id: str, position: int, kind: str = "step.started", payload: str = "{}") -> NewEvent:
    return NewEvent(run_id, position, kind, f"s{position}", payload, 1.0)


def message(run_id: str, name: str, payload: str = "1") -> NewEvent:
    return NewEvent(run_id, None, "message", name, payload, 1.0)


def child(run_id: str, parent: str, owner: str | None = "me") -> RunRecord:
    record = run(run_id, owner)
    record.parent_run_id = parent
    return record


def queued(run_id: str, queue: str = "q", priority: int = 0, created: float = 0.0) -> RunRecord:
    record = run(run_id, created=created)
    record.status, record.queue, record.priority = "queued", queue, priority
    return record
