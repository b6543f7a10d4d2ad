"""Faults that pass, survived by the same runtime: a full disk, a write lock held elsewhere.

Each makes journal writes fail for longer than the writer retries (shortened here
to half a second): the runs are let go and claimed again, with backoff, until the
journal can be written, and then finish, with nothing lost or written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import durable

from .helpers import sqlite_give_up_after, until


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs: a disk that can be filled. The tests run as root, in CI too."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to mount a tmpfs: {mounted.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def quick_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite_give_up_after(monkeypatch, 0.5)


RAN: Counter[int] = Counter()


@durable.step
async def chunk(i: int) -> str:
    RAN[i] += 1
    await asyncio.sleep(0.01)
    return "x" * 2000


@durable.workflow(name="faults.chunks")
async def chunks(ctx: durable.WorkflowContext, count: int) -> int:
    return sum([len(await chunk(i)) for i in range(count)])


async def first_refused_start(rt: durable.Runtime) -> Exception:
    for attempt in range(100):
        try:
            await rt.start(chunks, 1, run_id=f"refused-{attempt}")
        except Exception as exc:
            return exc
        await asyncio.sleep(0.05)
    raise AssertionError("no start was refused on a full disk")


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def ran_some() -> bool:
    return len(RAN) >= 5


async def completed_steps(rt: durable.Runtime, run_id: str) -> Counter[int]:
    events = await rt.history(run_id)
    return Counter(e["position"] for e in events if e["kind"] == "step.completed")


@pytest.mark.parametrize("writer", ["loop", "thread"])
async def test_a_full_disk_that_is_freed_again_is_survived(
    small_disk: Path, quick_give_up: None, writer: str
) -> None:
    RAN.clear()
    async with durable.Runtime(small_disk / "journal.db", durability="normal", writer=writer) as rt:
        handle = await rt.start(chunks, 60, run_id="c")
        await until(ran_some)
        filler = fill(small_disk)
        # What is left of the WAL file takes a write or two; then a start is refused
        # with a DurableError that says what to do, not a raw sqlite3 error.
        refused = await first_refused_start(rt)
        assert isinstance(refused, durable.DurableError)
        assert "disk is full" in str(refused) and "free disk space" in str(refused)
        ran_while_full = len(RAN)
        await asyncio.sleep(1.0)  # the run is let go, and tried again, in vain
        assert len(RAN) <= ran_while_full + 1
        filler.unlink()
        assert await handle.result(timeout=30) == 60 * 2000
        done = await completed_steps(rt, "c")
    assert sorted(done) == list(range(60)) and set(done.values()) == {1}
    assert set(RAN) == set(range(60))


async def test_a_write_lock_held_elsewhere_for_long_is_waited_out(
    sqlite_db: Path, quick_give_up: None
) -> None:
    RAN.clear()
    async with durable.Runtime(sqlite_db, durability="normal") as rt:
        handle = await rt.start(chunks, 40, run_id="c")
        await until(ran_some)
        other = sqlite3.connect(sqlite_db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        await asyncio.sleep(2.0)  # four times the writer's retries
        other.execute("COMMIT")
        other.close()
        assert await handle.result(timeout=30) == 40 * 2000
        done = await completed_steps(rt, "c")
    assert sorted(done) == list(range(40)) and set(done.values()) == {1}
