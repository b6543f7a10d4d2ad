"""Many ended runs ``bulk-00000``... written straight through the store, for the web
view's paging and search; it declares no workflow, so a test process that imports it
runs nothing new."""

from __future__ import annotations

import asyncio
from pathlib import Path

from durable.journal.records import RunRecord
from durable.store import open_store

SEED_STATUSES = ("completed", "failed", "cancelled")
SEED_WORKFLOWS = ("bulk.import", "bulk.export")


async def seed(db: Path | str, count: int, *, now: float, spacing: float = 60.0) -> None:
    """``count`` ended runs ``bulk-00000``... (the newest last, ``spacing`` seconds
    apart, ending before ``now``), written through the store in a few transactions."""
    store = open_store(db, "normal", None, 0.05)
    await store.open()
    try:
        records = [_seeded(i, now - (count - i) * spacing) for i in range(count)]
        for start in range(0, count, 500):
            await asyncio.gather(*(store.create_run(r) for r in records[start : start + 500]))
    finally:
        await store.close()


def _seeded(i: int, created: float) -> RunRecord:
    status = SEED_STATUSES[i % 3]
    error = '{"code":"STEP_FAILED","type":"StepFailed","message":"seeded"}'
    return RunRecord(
        run_id=f"bulk-{i:05}",
        workflow=SEED_WORKFLOWS[i % 2],
        version="1",
        status=status,
        input=f'{{"args":[{i}],"kwargs":{{}}}}',
        input_digest=f"d{i}",
        output="null" if status == "completed" else None,
        error=error if status == "failed" else None,
        owner=None,
        lease_until=None,
        created_at=created,
        updated_at=created + 1.0,
    )
