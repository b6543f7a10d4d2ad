"""Resuming a failed run: from the step that failed, or on its journal; `durable rerun`."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable

from .processes import cli

CALLS: list[str] = []
BROKEN: set[str] = set()


async def act(name: str) -> str:
    CALLS.append(name)
    if name in BROKEN:
        raise ValueError(f"{name} is broken")
    return name


@durable.workflow(name="resume.three")
async def three(ctx: durable.WorkflowContext) -> list[str]:
    return [await ctx.step(name, act, name) for name in ("a", "b", "c")]


@durable.workflow(name="resume.own_error")
async def own_error(ctx: durable.WorkflowContext) -> str:
    first = await ctx.step("a", act, "a")
    if "raise" in BROKEN:
        raise RuntimeError("the workflow's own bug")
    return first


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()
    BROKEN.clear()


async def test_resuming_a_run_that_failed_in_a_step_retries_that_step(db: Path) -> None:
    BROKEN.add("b")
    async with durable.Runtime(db) as rt:
        handle = await rt.start(three, run_id="r")
        with pytest.raises(durable.WorkflowFailed, match="b is broken"):
            await handle.result(timeout=10)
        BROKEN.clear()  # the fix (the API is back, the code is deployed)
        resumed = await rt.resume("r")
        assert await resumed.result(timeout=10) == ["a", "b", "c"]
        history = await rt.history("r")
    assert CALLS == ["a", "b", "b", "c"]  # "a" not again, "b" tried again
    failed = [event for event in history if event["kind"] == "step.failed"]
    assert [event["superseded"] for event in failed] == [True]
    info_error = [event for event in history if event["kind"] == "run.rerun"]
    assert [event["payload"] for event in info_error] == [{"position": 1}]


async def test_resuming_a_run_that_failed_elsewhere_replays_its_journal(db: Path) -> None:
    BROKEN.add("raise")
    async with durable.Runtime(db) as rt:
        handle = await rt.start(own_error, run_id="o")
        with pytest.raises(durable.WorkflowFailed, match="own bug"):
            await handle.result(timeout=10)
        BROKEN.clear()
        assert await (await rt.resume("o")).result(timeout=10) == "a"
    assert CALLS == ["a"]  # replayed from the journal, not run again


def test_cli_resume_and_rerun_from_a_position(db: Path) -> None:
    import asyncio

    async def scenario() -> None:
        BROKEN.add("c")
        async with durable.Runtime(db) as rt:
            with pytest.raises(durable.WorkflowFailed):
                await (await rt.start(three, run_id="x")).result(timeout=10)
        BROKEN.clear()
        resumed = cli(db, "resume", "x")
        assert resumed.returncode == 0, resumed.stderr
        async with durable.Runtime(db) as rt:
            assert await rt.handle("x").result(timeout=10) == ["a", "b", "c"]
        assert CALLS == ["a", "b", "c", "c"]
        rerun = cli(db, "rerun", "x", "--from", "1")
        assert rerun.returncode == 0, rerun.stderr
        assert "from position 1" in rerun.stdout
        async with durable.Runtime(db) as rt:
            assert await rt.handle("x").result(timeout=10) == ["a", "b", "c"]
        assert CALLS == ["a", "b", "c", "c", "b", "c"]
        refused = cli(db, "rerun", "x")
        assert refused.returncode == 2 and "--from" in refused.stderr

    asyncio.run(scenario())
