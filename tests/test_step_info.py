"""Inside a step: step_info(), retry context, idempotency keys, at-most-once, rerun_from, check."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import scoped_workflows

from .helpers import status_is, until

INFOS: list[durable.StepInfo] = []


def record_sync() -> str:
    INFOS.append(durable.step_info())
    return threading.current_thread().name


async def record_async(fail_times: int = 0) -> str:
    info = durable.step_info()
    INFOS.append(info)
    if info.attempt <= fail_times:
        raise ConnectionError(f"attempt {info.attempt} failed")
    return "ok"


@durable.workflow(name="info.basic")
async def basic(ctx: durable.WorkflowContext) -> list[str]:
    a = await ctx.step("async_step", record_async)
    b = await ctx.step("sync_step", record_sync)
    return [a, b]


async def test_step_info_in_async_and_sync_steps(db: Path) -> None:
    INFOS.clear()
    async with durable.Runtime(db) as rt:
        result = await (await rt.start(basic, run_id="r1")).result()
        await (await rt.start(basic, run_id="r2")).result()
    assert result[1] != threading.current_thread().name
    first, second, _, _ = INFOS
    assert (first.run_id, first.workflow, first.step, first.position, first.attempt) == (
        "r1",
        "info.basic",
        "async_step",
        0,
        1,
    )
    assert (second.step, second.position) == ("sync_step", 1)
    assert first.retry.prior_completion_status == "none"
    assert (first.retry.gate_count, first.retry.completion_count) == (1, 0)
    assert first.retry.first_attempt_at == first.retry.last_attempt_at
    keys = {info.idempotency_key for info in INFOS}
    assert len(keys) == 4  # differs between steps and between runs
    assert first.idempotency_key.endswith("-async_step")
    assert len(first.idempotency_key.split("-")[0]) == 32


def test_step_info_outside_a_step() -> None:
    with pytest.raises(durable.DurableError, match="outside a step"):
        durable.step_info()


async def test_retry_context_after_failed_attempts(db: Path) -> None:
    INFOS.clear()

    @durable.workflow(name="info.retries")
    async def retries(ctx: durable.WorkflowContext) -> str:
        policy = durable.RetryPolicy(max_attempts=3, initial_interval=10)
        flaky = durable.step(name="flaky", retry=policy)(record_async)
        return await flaky(2)

    clock = durable.VirtualClock()
    async with durable.Runtime(db, clock=clock) as rt:
        assert await (await rt.start(retries)).result() == "ok"
    one, two, three = INFOS
    assert len({one.idempotency_key, two.idempotency_key, three.idempotency_key}) == 1
    assert [i.attempt for i in INFOS] == [1, 2, 3]
    assert [i.retry.prior_completion_status for i in INFOS] == ["none", "failed", "failed"]
    assert three.retry.prior_error == {
        "code": "STEP_ERROR",
        "type": "ConnectionError",
        "message": "attempt 2 failed",
    }
    assert three.retry.gate_count == 3 and three.retry.completion_count == 0
    assert three.retry.first_attempt_at == one.retry.last_attempt_at
    assert three.retry.last_attempt_at is not None and three.retry.first_attempt_at is not None
    assert (three.retry.last_attempt_at - three.retry.first_attempt_at).total_seconds() == 30


BODY_RUNS: list[int] = []


@durable.step(at_most_once=True)
async def send_wire(amount: int) -> str:
    BODY_RUNS.append(amount)
    await asyncio.Event().wait()
    return "sent"


@durable.workflow(name="info.wire")
async def wire(ctx: durable.WorkflowContext) -> str:
    try:
        return await send_wire(100)
    except durable.StepInterrupted as exc:
        await ctx.wait_for_event("decided")
        return f"interrupted: {exc.code}"


async def test_at_most_once_step_interrupted_is_not_run_again(db: Path) -> None:
    BODY_RUNS.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(wire, run_id="w")
        await until(lambda: asyncio.sleep(0, BODY_RUNS))
    # Leaving the runtime stops the step where it is, as a crash would.
    async with durable.Runtime(db) as rt:
        await status_is(rt, "w", "waiting")
        failed = [e for e in await rt.history("w") if e["kind"] == "step.failed"]
        assert failed[0]["payload"]["final"]["code"] == "STEP_INTERRUPTED"
    async with durable.Runtime(db) as rt:
        await rt.send_event("w", "decided")
        assert await rt.handle("w").result(timeout=5) == "interrupted: STEP_INTERRUPTED"
    assert BODY_RUNS == [100]


async def test_at_most_once_step_retries_after_an_ordinary_failure(db: Path) -> None:
    INFOS.clear()
    policy = durable.RetryPolicy(max_attempts=2, initial_interval=0)
    once = durable.step(name="once", at_most_once=True, retry=policy)(record_async)

    @durable.workflow(name="info.once_retry")
    async def once_retry(ctx: durable.WorkflowContext) -> str:
        return await once(1)

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(once_retry)).result() == "ok"
    assert [i.attempt for i in INFOS] == [1, 2]


COUNTER: dict[str, int] = {"n": 0}


async def count() -> int:
    COUNTER["n"] += 1
    INFOS.append(durable.step_info(include_prior_output=True))
    return COUNTER["n"]


@durable.workflow(name="info.rerun")
async def rerun(ctx: durable.WorkflowContext) -> list[int]:
    return [await ctx.step("a", count), await ctx.step("b", count)]


async def test_rerun_from_a_step_keeps_and_supersedes_the_old_entries(db: Path) -> None:
    INFOS.clear()
    COUNTER["n"] = 0
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(rerun, run_id="r")).result() == [1, 2]
        before = await rt.history("r")
        handle = await rt.rerun_from("r", 1)
        assert await handle.result(timeout=5) == [1, 3]
        after = await rt.history("r")
    assert INFOS[0].prior_output is None
    again = INFOS[-1]
    assert (again.step, again.retry.prior_completion_status) == ("b", "completed")
    assert (again.retry.completion_count, again.retry.gate_count, again.attempt) == (1, 2, 2)
    assert again.prior_output == 2
    assert again.idempotency_key == INFOS[1].idempotency_key
    old = [e for e in after if e["seq"] in {b["seq"] for b in before}]
    assert [e["superseded"] for e in old] == [False, False, True, True]
    assert [{k: v for k, v in e.items() if k != "superseded"} for e in old] == [
        {k: v for k, v in e.items() if k != "superseded"} for e in before
    ]
    assert [(e["kind"], e["position"]) for e in after[len(before) :]] == [
        ("run.rerun", None),
        ("step.started", 1),
        ("step.completed", 1),
    ]


async def test_rerun_and_resume_refuse_runs_in_the_wrong_state(db: Path) -> None:
    @durable.workflow(name="info.parked")
    async def parked(ctx: durable.WorkflowContext) -> None:
        await ctx.wait_for_event("never")

    async with durable.Runtime(db) as rt:
        await rt.start(parked, run_id="p")
        await status_is(rt, "p", "waiting")
        with pytest.raises(durable.DurableError, match="completed or failed"):
            await rt.rerun_from("p", 0)
        with pytest.raises(durable.DurableError, match="only a failed run"):
            await rt.resume("p")


async def test_check_reports_interrupted_steps_orphans_and_unknown_workflows(db: Path) -> None:
    BODY_RUNS.clear()
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    @durable.workflow(name="info.hanging")
    async def hanging(ctx: durable.WorkflowContext) -> None:
        await ctx.step("hang", hang)

    with scoped_workflows():  # the workflow is gone after the block, as after a deploy

        @durable.workflow(name="info.gone")
        async def gone(ctx: durable.WorkflowContext) -> None:
            await ctx.wait_for_event("never")

        async with durable.Runtime(db) as rt:
            await rt.start(hanging, run_id="h")
            await rt.start(gone, run_id="g")
            await started.wait()
            await status_is(rt, "g", "waiting")
            assert (await rt.check()).ok
    async with durable.Runtime(db, recover=False) as tool:
        report = await tool.check()
    assert [(s.run_id, s.step, s.retried) for s in report.interrupted_steps] == [
        ("h", "hang", False)
    ]
    assert report.orphaned_runs == []  # stopped cleanly: the next runtime takes them
    assert [r.run_id for r in report.unregistered_runs] == ["g"]
    data: dict[str, Any] = report.to_dict()
    assert data["ok"] is False and data["unregistered_runs"][0]["workflow"] == "info.gone"

    started.clear()
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as tool:
        await started.wait()  # resumed: the hanging step runs again
        report = await tool.check()
    assert [(s.step, s.attempt, s.retried) for s in report.interrupted_steps] == [("hang", 1, True)]
    assert report.orphaned_runs == []
