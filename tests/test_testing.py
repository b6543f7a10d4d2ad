"""durable.testing: the pytest plugin, crash simulation, always_replay, export and replay."""

from __future__ import annotations

import asyncio
import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import crash, load_history, replay

from . import golden
from .helpers import status_is

USER_TESTS = """
import pytest
import durable

@durable.workflow(name="user.month")
async def month(ctx: durable.WorkflowContext) -> str:
    await ctx.sleep(30 * 86400)
    return "done"

@durable.workflow(name="user.approve")
async def approve(ctx: durable.WorkflowContext) -> str:
    return await ctx.wait_for_user("ok?", input_type="approval")

@pytest.mark.asyncio
async def test_thirty_days_at_once(durable_runtime, durable_clock):
    start = durable_clock.now()
    handle = await durable_runtime.start(month)
    assert await handle.result(timeout=5) == "done"
    assert durable_clock.now() - start == 30 * 86400

@pytest.mark.asyncio
async def test_call_inside_the_fixture_runtime(durable_runtime):
    assert await month() == "done"

@pytest.mark.asyncio
async def test_advance_by_hand(durable_runtime, durable_clock):
    durable_clock.auto_skip = False
    handle = await durable_runtime.start(month)
    while (await handle.status()) != "sleeping":
        await __import__("asyncio").sleep(0.01)
    durable_clock.advance(30 * 86400)
    assert await handle.result(timeout=5) == "done"

@pytest.mark.asyncio
async def test_crash_and_resume(durable_runtime, durable_crash):
    handle = await durable_runtime.start(approve, run_id="a")
    while not await durable_runtime.pending_waits("a"):
        await __import__("asyncio").sleep(0.01)
    rt = await durable_crash()
    await rt.respond("a", "yes")
    assert await rt.handle("a").result(timeout=5) == "yes"
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_plugin_fixtures_in_strict_and_auto_mode(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # this durable
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-o", f"asyncio_mode={mode}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


SEEN: list[str] = []


async def hang(name: str) -> str:
    SEEN.append(f"{name} {durable.step_info().retry.prior_completion_status}")
    if len(SEEN) == 1:
        await asyncio.Event().wait()
    return name


@durable.workflow(name="testing.crashy")
async def crashy(ctx: durable.WorkflowContext) -> str:
    return await ctx.step("hang", hang, "h")


async def test_crash_abandons_in_flight_runs_and_resumes_them(db: Path) -> None:
    SEEN.clear()
    clock = durable.VirtualClock()
    rt = durable.Runtime(db, clock=clock)
    await rt.open()
    await rt.start(crashy, run_id="c")
    await status_is(rt, "c", "running")
    while not SEEN:
        await asyncio.sleep(0.005)
    before = await rt.history("c")
    rt = await crash(rt)
    try:
        assert await rt.handle("c").result(timeout=5) == "h"
        after = await rt.history("c")
    finally:
        await rt.close()
    assert SEEN == ["h none", "h gated_not_completed"]
    assert after[: len(before)] == before
    assert [e["kind"] for e in after] == [
        "step.started",
        "run.recovered",
        "step.started",
        "step.completed",
    ]


ENTRIES = itertools.count()


async def echo(value: int) -> int:
    return value


@durable.workflow(name="testing.deterministic")
async def deterministic(ctx: durable.WorkflowContext) -> int:
    next(ENTRIES)
    total = await ctx.step("one", echo, 1)
    await ctx.sleep(60)
    total += await ctx.step("two", echo, 2)
    await ctx.wait_for_event("go")
    return total


NAMES = itertools.count()


@durable.workflow(name="testing.nondeterministic")
async def nondeterministic(ctx: durable.WorkflowContext) -> int:
    await ctx.step(f"step-{next(NAMES)}", echo, 1)  # a new name every time the code runs
    await ctx.sleep(60)
    return 1


async def test_always_replay_rebuilds_runs_at_every_suspension(db: Path) -> None:
    entries_before = next(ENTRIES)
    clock = durable.VirtualClock()
    async with durable.Runtime(db, clock=clock, always_replay=True) as rt:
        handle = await rt.start(deterministic, run_id="d")
        await status_is(rt, "d", "sleeping")
        clock.advance(60)  # nobody awaits the run yet, so time holds still until told
        await status_is(rt, "d", "waiting")
        await rt.send_event("d", "go")
        assert await handle.result(timeout=5) == 3
    # First run, a rebuild at the sleep, a rebuild at the wait: the body ran three times.
    assert next(ENTRIES) - entries_before - 1 == 3


async def test_always_replay_flushes_out_non_determinism(db: Path) -> None:
    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        assert await (await rt.start(nondeterministic, run_id="plain")).result(timeout=5) == 1
    async with durable.Runtime(db, clock=durable.VirtualClock(), always_replay=True) as rt:
        handle = await rt.start(nondeterministic, run_id="replayed")
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result(timeout=5)
    assert failed.value.error["code"] == "NON_DETERMINISM"
    assert failed.value.error["position"] == 0


async def test_export_then_replay_against_current_and_changed_code(db: Path) -> None:
    clock = durable.VirtualClock()
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(deterministic, run_id="e")
        await status_is(rt, "e", "sleeping")
        clock.advance(60)
        await status_is(rt, "e", "waiting")
        await rt.send_event("e", "go")
        await handle.result(timeout=5)
        document = await rt.export("e")
    assert (document["format"], document["version"]) == ("durable.history", 1)
    assert document["run"]["status"] == "completed" and document["run"]["output"] == 3
    assert [e["name"] for e in document["events"]][:2] == ["one", "one"]
    await replay(deterministic, document)

    changed = copy.deepcopy(document)
    for event in changed["events"]:
        if event["name"] == "two":
            event["name"] = "renamed"
    with pytest.raises(durable.NonDeterminismError) as mismatch:
        await replay(deterministic, changed)
    assert (mismatch.value.position, mismatch.value.expected, mismatch.value.received) == (
        2,
        "step 'renamed'",
        "step 'two'",
    )


@pytest.mark.parametrize("path", sorted(golden.FIXTURES.glob("*.json")), ids=lambda p: p.stem)
async def test_golden_histories_replay_on_current_code(path: Path) -> None:
    await replay(golden.HISTORIES[path.stem], path)


async def test_golden_histories_catch_a_changed_workflow() -> None:
    @durable.workflow(name="golden.procurement", version="changed")
    async def reordered(ctx: durable.WorkflowContext, suppliers: list[str]) -> Any:
        await ctx.sleep(3600)  # moved before the quotes
        return None

    with pytest.raises(durable.NonDeterminismError) as mismatch:
        await replay(reordered, golden.FIXTURES / "procurement_completed.json")
    assert mismatch.value.position == 0
    assert mismatch.value.received == "sleep 'sleep'"


def test_load_history_refuses_other_documents(tmp_path: Path) -> None:
    with pytest.raises(durable.DurableError, match="not a durable history"):
        load_history({"events": []})
    with pytest.raises(durable.DurableError, match="version 99"):
        load_history({"format": "durable.history", "version": 99})


async def test_crash_reopens_with_every_setting_of_the_runtime(sqlite_db: Path) -> None:
    rt = durable.Runtime(
        sqlite_db,
        durability="normal",
        writer="thread",
        max_in_memory_runs=7,
        max_value_bytes=1234,
        max_recoveries=3,
        workflows=[crashy],
    )
    await rt.open()
    reopened = await crash(rt)
    try:
        assert reopened.path == sqlite_db and reopened.owner == rt.owner
        assert reopened.settings == {**(rt.settings or {}), "identity": rt.owner}
        assert reopened.options == rt.options
        assert (reopened.options.max_in_memory_runs, reopened.options.max_value_bytes) == (7, 1234)
        assert reopened.options.max_recoveries == 3 and reopened.options.workflows == (crashy,)
        assert type(reopened.store.writer).__name__ == "ThreadWriter"  # type: ignore[attr-defined]
    finally:
        await reopened.close()


async def test_crash_refuses_a_runtime_built_on_a_ready_made_store(sqlite_db: Path) -> None:
    from durable.store.sqlite.store import SqliteStore

    rt = durable.Runtime(store=SqliteStore(sqlite_db, "normal", None))
    await rt.open()
    try:
        with pytest.raises(durable.DurableError, match=r"store=.*cannot be reopened"):
            await crash(rt)
    finally:
        await rt.close()


async def test_replay_refuses_a_history_of_another_workflow_before_running_it() -> None:
    ran: list[str] = []

    @durable.workflow(name="testing.not_procurement")
    async def other(ctx: durable.WorkflowContext, suppliers: list[str]) -> None:
        ran.append("other")

    history = golden.FIXTURES / "procurement_completed.json"
    with pytest.raises(durable.DurableError) as refused:
        await replay(other, history)
    assert not isinstance(refused.value, durable.NonDeterminismError)
    assert "'golden.procurement'" in str(refused.value)
    assert "'testing.not_procurement'" in str(refused.value)
    assert ran == []
