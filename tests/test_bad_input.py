"""Bad input: clear errors, and nothing already journaled is lost or rewritten."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import durable

from .helpers import status_is
from .journal_sql import execute, query


@durable.workflow(name="bad.echo")
async def echo(ctx: durable.WorkflowContext, size: int) -> str:
    text = await ctx.step("make", lambda: "x" * size)
    return str(len(text))


@durable.workflow(name="bad.gated")
async def gated(ctx: durable.WorkflowContext, name: str) -> str:
    first = await ctx.step("first", str.upper, name)
    await ctx.wait_for_event("go")
    return first


async def test_values_over_the_size_limit_are_refused_with_the_limit_named(db: Path) -> None:
    async with durable.Runtime(db, max_value_bytes=1000) as rt:
        with pytest.raises(durable.SerializationError, match=r"over the limit of 1000"):
            await rt.start(gated, "x" * 2000)
        assert await rt.list_runs() == []

        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(echo, 2000, run_id="big-result")).result()
        assert failed.value.error["code"] == "SERIALIZATION"
        assert "'make'" in failed.value.error["message"]
        assert "max_value_bytes" in failed.value.error["message"]
        assert await (await rt.start(echo, 10)).result() == "10"

        await rt.start(gated, "ok", run_id="g")
        await status_is(rt, "g", "waiting")
        before = await rt.history("g")
        with pytest.raises(durable.SerializationError, match="over the limit"):
            await rt.send_event("g", "go", "y" * 5000)
        assert await rt.history("g") == before


async def test_a_corrupt_payload_fails_that_run_alone_naming_run_and_position(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(gated, "bad", run_id="corrupt")
        await rt.start(gated, "good", run_id="healthy")
        await status_is(rt, "corrupt", "waiting")
        await status_is(rt, "healthy", "waiting")
    execute(
        db,
        "UPDATE events SET payload = '{\"result\": \"BA' WHERE run_id = 'corrupt'"
        " AND kind = 'step.completed'",
    )
    before = query(db, "SELECT * FROM events ORDER BY run_id, seq")

    async with durable.Runtime(db) as rt:
        await rt.send_event("healthy", "go")
        assert await rt.handle("healthy").result(timeout=10) == "GOOD"
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("corrupt").result(timeout=10)
    error = failed.value.error
    assert error["code"] == "CORRUPT_JOURNAL"
    assert "'corrupt'" in error["message"] and "position 0" in error["message"]
    after = query(db, "SELECT * FROM events ORDER BY run_id, seq")
    assert [row for row in after if row in before] == before  # nothing journaled was changed


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable, for root too (an immutable file) when run as root."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a file read-only")
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_a_read_only_journal_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    async with durable.Runtime(path):
        pass
    before = path.read_bytes()
    refused = pytest.raises(durable.DurableError, match=r"ro\.db is not readable and writable")
    with read_only(path), refused:
        async with durable.Runtime(path):
            pass
    assert path.read_bytes() == before


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "make",
    [
        lambda: durable.step(timeout=NAN),
        lambda: durable.step(timeout=INF),
        lambda: durable.step(timeout=0),
        lambda: durable.RetryPolicy(max_attempts=3, initial_interval=NAN),
        lambda: durable.RetryPolicy(max_attempts=3, max_interval=INF),
        lambda: durable.RetryPolicy(max_attempts=3, backoff_coefficient=NAN),
        lambda: durable.Runtime("unused.db", lease_seconds=NAN),
        lambda: durable.Runtime("unused.db", poll_interval=0),
        lambda: durable.Runtime("unused.db", max_recoveries=0),
        lambda: durable.Runtime("unused.db", max_in_memory_runs=0),
        lambda: durable.Runtime("unused.db", max_value_bytes=-5),
    ],
)
def test_a_time_or_limit_that_is_not_a_positive_finite_number_is_refused(
    make: Callable[[], object],
) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()


async def test_sleeps_and_waits_refuse_nan(tmp_path: Path) -> None:
    @durable.workflow(name="bad_input.nan_sleep")
    async def nan_sleep(ctx: durable.WorkflowContext, which: str) -> None:
        if which == "sleep":
            await ctx.sleep(NAN)
        else:
            await ctx.wait_for_event("e", timeout=NAN)

    async with durable.Runtime(tmp_path / "journal.db") as rt:
        for which in ("sleep", "wait"):
            with pytest.raises(durable.WorkflowFailed, match="finite number of seconds"):
                await (await rt.start(nan_sleep, which)).result(timeout=5)


async def test_a_journal_in_a_read_only_folder_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    async with durable.Runtime(folder / "journal.db"):
        pass
    with read_only(folder), pytest.raises(durable.DurableError) as refused:
        async with durable.Runtime(folder / "journal.db"):
            pass
    assert f"the folder {folder} is not writable" in str(refused.value)
    assert "journal.db-wal" in str(refused.value)


def test_a_folder_on_the_way_that_cannot_be_entered_is_named(tmp_path: Path) -> None:
    """As root, permissions bind only without the capabilities that override them."""
    if shutil.which("setpriv") is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs setpriv (util-linux) for this test")
        pytest.skip("no setpriv here")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    program = (
        "import asyncio, durable\n"
        "async def main():\n"
        f"    async with durable.Runtime({str(locked / 'inner' / 'journal.db')!r}):\n"
        "        pass\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except durable.DurableError as exc:\n"
        "    print('DurableError:', exc)\n"
    )
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    result = subprocess.run(
        [*drop, sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        timeout=60,
    )
    locked.chmod(0o755)
    assert "DurableError: cannot reach journal" in result.stdout, result.stderr
    assert "permission denied" in result.stdout and "chmod +x" in result.stdout
