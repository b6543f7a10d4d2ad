"""The CLI and the HTTP API show any stored value, however odd (a sleep of 1e300
seconds, a time past year 9999, a time that is not a number, a huge output), without
a traceback: a time that cannot be a datetime is shown as it is stored."""

from __future__ import annotations

from pathlib import Path

import httpx

import durable

from .helpers import status_is
from .journal_sql import execute
from .processes import cli
from .test_server import serve


@durable.workflow(name="odd.sleep")
async def sleep_for(ctx: durable.WorkflowContext, seconds: float) -> None:
    await ctx.sleep(seconds)


@durable.workflow(name="odd.wait")
async def wait_long(ctx: durable.WorkflowContext) -> None:
    await ctx.wait_for_user("Go?", timeout=1e300)


@durable.workflow(name="odd.big")
async def big_output(ctx: durable.WorkflowContext) -> str:
    return "x" * 3_000_000


async def _odd_runs(db: Path | str) -> list[str]:
    async with durable.Runtime(db) as rt:
        await rt.start(sleep_for, 1e300, run_id="forever")
        await rt.start(sleep_for, 4e11, run_id="year-12000")
        await rt.start_run(sleep_for, [5.0], {}, run_id="garbled")
        await rt.start_run(sleep_for, [5.0], {}, run_id="shapeless")
        await rt.start_run(wait_long, [], {}, run_id="long-wait", timeout=1e300)
        assert await (await rt.start(big_output, run_id="big")).result(timeout=10)
        for run_id in ("forever", "year-12000", "garbled", "shapeless"):
            await status_is(rt, run_id, "sleeping")
        await status_is(rt, "long-wait", "waiting")
    execute(
        db,
        "UPDATE events SET payload = ? WHERE run_id = 'garbled' AND kind = 'sleep.started'",
        ('{"wake_at": "soon"}',),
    )
    execute(
        db,
        "UPDATE events SET payload = '[1]' WHERE run_id = 'shapeless' AND kind = 'sleep.started'",
    )
    return ["forever", "year-12000", "garbled", "shapeless", "long-wait", "big"]


async def test_show_history_and_the_api_print_odd_stored_values(db: Path | str) -> None:
    runs = await _odd_runs(db)
    for run_id in runs:
        for command in (("show", run_id), ("show", run_id, "--json"), ("history", run_id)):
            shown = cli(db, *command)
            assert shown.returncode == 0, (command, shown.stderr)
            assert "Traceback" not in shown.stderr
    assert "sleep until 1e+300" in cli(db, "show", "forever").stdout
    assert "'soon' (as stored: not a time)" in cli(db, "show", "garbled").stdout
    assert "sleep.started 'sleep': [1]" in cli(db, "show", "shapeless").stdout
    assert cli(db, "runs").returncode == 0
    proc, url = serve(db)
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            for run_id in runs:
                for path in ("", "/history", "/waits", "/state"):
                    answer = api.get(f"/api/runs/{run_id}{path}")
                    assert answer.status_code == 200, (run_id, path, answer.text)
            assert api.get("/api/runs").status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
