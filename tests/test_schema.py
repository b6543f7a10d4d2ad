"""Schema versions: journals of older versions are migrated; newer ones are refused."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest

import durable
from durable.store.sqlite.schema import SCHEMA_VERSION

from . import golden
from .helpers import until


@pytest.fixture
def db(sqlite_db: Path) -> Path:
    """This module tests the SQLite store's own parts: its writers, its file, its migrations."""
    return sqlite_db


FIXTURE = Path(__file__).parent / "fixtures" / "journal_schema_v1.db"


def user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def test_a_first_version_journal_is_migrated_and_its_run_completes(db: Path) -> None:
    shutil.copy(FIXTURE, db)
    assert user_version(db) == 1 < SCHEMA_VERSION
    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        assert user_version(db) == SCHEMA_VERSION
        history = await rt.history("v1-run")
        await rt.send_event("v1-run", "finish", "again")
        assert await rt.handle("v1-run").result(timeout=10) == "HELLO ADA again"
        after = await rt.history("v1-run")
    assert after[: len(history)] == history
    assert golden.schema_v1.name == "golden.schema_v1"


async def test_a_journal_from_a_newer_schema_is_refused_untouched(db: Path) -> None:
    shutil.copy(FIXTURE, db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
    before = db.read_bytes()
    with pytest.raises(
        durable.DurableError, match=rf"schema version 99.*this durable's {SCHEMA_VERSION}"
    ):
        async with durable.Runtime(db):
            pass
    assert user_version(db) == 99
    assert db.read_bytes() == before


async def test_a_new_journal_gets_the_current_version(db: Path) -> None:
    async with durable.Runtime(db):
        pass
    assert user_version(db) == SCHEMA_VERSION


def schema(path: Path) -> dict[str, tuple[str, str]]:
    """Every table and index: what it belongs to and how it was declared, spacing aside."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name, tbl_name, sql FROM sqlite_master").fetchall()
    return {name: (table, " ".join((sql or "").split())) for name, table, sql in rows}


async def test_a_migrated_journal_has_the_same_tables_and_indexes_as_a_new_one(
    db: Path, tmp_path: Path
) -> None:
    shutil.copy(FIXTURE, db)
    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:

        async def listed_waiting() -> list[durable.RunInfo]:
            return await rt.list_runs(status="waiting")

        # Resumed, it replays a sleep ("sleeping") before it parks at its wait again.
        waiting = await until(listed_waiting)
    fresh = tmp_path / "fresh.db"
    async with durable.Runtime(fresh):
        pass
    assert schema(db) == schema(fresh)
    assert "WITHOUT ROWID" in schema(db)["events"][1]
    assert "runs_by_status" not in schema(db)  # dropped by version 3
    assert schema(db)["runs_active"][0] == "runs"
    assert [run.run_id for run in waiting] == ["v1-run"]


@durable.workflow(name="schema.big_sleeper")
async def big_sleeper(ctx: durable.WorkflowContext, blob: str) -> int:
    for _ in range(20):
        await ctx.sleep(0.001)
    return len(blob)


def bytes_written() -> int:
    """What this process has passed to write() so far (the journal's WAL, mostly)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar"))


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_large_input_is_written_once_not_at_every_status_change(
    db: Path, durability: str
) -> None:
    """20 sleeps are 40 status changes; with the input in the runs row each rewrote it
    (99 MB for a 2 MB input). Now the input is written once, beside the row."""
    async with durable.Runtime(db, durability=durability) as rt:
        before = bytes_written()
        handle = await rt.start(big_sleeper, "x" * 2_000_000)
        assert await handle.result(timeout=30) == 2_000_000
        written = bytes_written() - before
    assert written < 8_000_000, f"{written / 1e6:.1f} MB written for a 2 MB input"
