"""Determinism: positions, journaled values, and NonDeterminismError with resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import status_is

MARKERS = ("run.rerun", "run.resumed")
"""What rt.rerun_from and rt.resume append: markers, never a change to what was there."""

CODE = {"second": "b"}


async def named(value: str) -> str:
    return value


@durable.workflow(name="determinism.changing")
async def changing(ctx: durable.WorkflowContext) -> list[str]:
    first = await ctx.step("a", named, "1")
    await ctx.wait_for_event("go")
    second = await ctx.step(CODE["second"], named, "2")
    return [first, second]


async def test_changed_code_fails_the_run_and_leaves_the_journal_for_a_fix(db: Path) -> None:
    CODE["second"] = "b"
    async with durable.Runtime(db) as rt:
        await rt.start(changing, run_id="c")
        await status_is(rt, "c", "waiting")
        await rt.send_event("c", "go")
        assert await rt.handle("c").result(timeout=10) == ["1", "2"]
        journal = await rt.history("c")

    # Replay the finished journal with other code: rerun from the end forces a replay.
    CODE["second"] = "renamed"
    async with durable.Runtime(db) as rt:
        await rt.rerun_from("c", 99)
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("c").result(timeout=10)
        error = failed.value.error
        assert error["code"] == "NON_DETERMINISM"
        assert (error["position"], error["expected"], error["received"]) == (
            2,
            "step 'b'",
            "step 'renamed'",
        )
        after = await rt.history("c")
        assert [e for e in after if e["kind"] not in MARKERS] == journal

        CODE["second"] = "b"
        await rt.resume("c")
        assert await rt.handle("c").result(timeout=10) == ["1", "2"]
        assert [e for e in await rt.history("c") if e["kind"] not in MARKERS] == journal


@durable.workflow(name="determinism.swallow")
async def swallow(ctx: durable.WorkflowContext) -> str:
    await ctx.step("one", named, "x")
    try:
        await ctx.step(CODE["second"], named, "y")
    except Exception:
        return "swallowed"
    return "ran"


async def test_user_code_cannot_swallow_non_determinism(db: Path) -> None:
    CODE["second"] = "two"
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(swallow, run_id="s")).result() == "ran"
        CODE["second"] = "three"
        await rt.rerun_from("s", 5)
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("s").result(timeout=10)
    assert failed.value.error["code"] == "NON_DETERMINISM"
    assert failed.value.error["received"] == "step 'three'"


async def test_workflow_that_returns_early_on_replay_is_non_deterministic(db: Path) -> None:
    steps = {"count": 2}

    @durable.workflow(name="determinism.shorter")
    async def shorter(ctx: durable.WorkflowContext) -> int:
        for i in range(steps["count"]):
            await ctx.step(f"s{i}", named, str(i))
        return steps["count"]

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(shorter, run_id="s")).result() == 2
        steps["count"] = 1
        await rt.rerun_from("s", 10)
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("s").result(timeout=10)
    assert failed.value.error["code"] == "NON_DETERMINISM"
    assert failed.value.error["received"] == "the workflow returning"


async def test_now_uuid_random_are_the_same_on_replay(db: Path) -> None:
    seen: list[Any] = []

    @durable.workflow(name="determinism.values")
    async def values(ctx: durable.WorkflowContext) -> None:
        seen.append((ctx.now(), ctx.uuid4(), ctx.random()))
        await ctx.wait_for_event("go")

    async with durable.Runtime(db) as rt:
        await rt.start(values, run_id="v")
        await status_is(rt, "v", "waiting")
    async with durable.Runtime(db) as rt:
        await rt.send_event("v", "go")
        await rt.handle("v").result(timeout=10)
    assert len(seen) == 2 and seen[0] == seen[1]
    moment, uid, number = seen[0]
    assert moment.tzinfo is not None and uid.version == 4 and 0 <= number < 1
