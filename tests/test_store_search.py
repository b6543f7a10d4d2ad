"""The store suite: finding runs by a piece of their id, with the other filters and the
keyset cursor, on every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durable
from durable.store.ports import Store

from .store_suite import run, store

__all__ = ["store"]

IDS = [
    "order-17",
    "order-170",
    "refund-17",
    "Order-17",  # case counts
    "50%_off\\now",  # LIKE's wildcards and escape are plain characters here
    "5000_off",
    "tenant/ünïcode-17",
]


async def _create(store: Store, ids: list[str], workflow: str = "wf") -> None:
    for index, run_id in enumerate(ids):
        await store.create_run(run(run_id, workflow=workflow, created=float(index)))


async def test_runs_are_found_by_a_piece_of_their_id(store: Store) -> None:
    await _create(store, IDS)

    async def found(**search: str) -> list[str]:
        return [r.run_id for r in await store.list_runs(limit=None, **search)]  # type: ignore[arg-type]

    assert await found(id_contains="-17") == [
        "tenant/ünïcode-17",
        "Order-17",
        "refund-17",
        "order-170",
        "order-17",
    ]
    assert await found(id_prefix="order-17") == ["order-170", "order-17"]
    assert await found(id_prefix="Order") == ["Order-17"]
    assert await found(id_contains="%_") == ["50%_off\\now"]
    assert await found(id_contains="0_off") == ["5000_off"]
    assert await found(id_prefix="50%") == ["50%_off\\now"]
    assert await found(id_contains="\\") == ["50%_off\\now"]
    assert await found(id_contains="ünï") == ["tenant/ünïcode-17"]
    assert await found(id_contains="nothing") == []
    assert await found(id_contains="17", id_prefix="re") == ["refund-17"]


async def test_a_search_combines_with_filters_and_pages_with_the_cursor(store: Store) -> None:
    await asyncio.gather(
        *(
            store.create_run(run(f"r-{i:03}", workflow="a" if i % 2 else "b", created=float(i)))
            for i in range(120)
        )
    )
    pages, cursor = [], None
    while True:
        page = await store.list_runs(workflow="a", limit=7, after=cursor, id_contains="1")
        if not page:
            break
        pages.append([r.run_id for r in page])
        cursor = (page[-1].created_at, page[-1].run_id)
    listed = [run_id for page in pages for run_id in page]
    wanted = [f"r-{i:03}" for i in range(119, -1, -1) if i % 2 and "1" in f"{i:03}"]
    assert listed == wanted and len(pages) == -(-len(wanted) // 7)
    recent = await store.list_runs(id_prefix="r-1", since=100.0, until=110.0, limit=None)
    assert [r.run_id for r in recent] == [f"r-{i}" for i in range(109, 99, -1)]


async def test_the_runtime_searches_and_refuses_an_empty_search(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        for run_id in ("tenant-a/1", "tenant-b/1", "tenant-a/2"):
            await rt.start(noop, run_id=run_id)
        found = await rt.list_runs(id_prefix="tenant-a/")
        assert sorted(run.run_id for run in found) == ["tenant-a/1", "tenant-a/2"]
        assert [run.run_id for run in await rt.list_runs(id_contains="b/")] == ["tenant-b/1"]
        for bad in ("", "a\x00b"):
            with pytest.raises(ValueError, match="id_contains"):
                await rt.list_runs(id_contains=bad)


@durable.workflow(name="search.noop")
async def noop(ctx: durable.WorkflowContext) -> None:
    return None
