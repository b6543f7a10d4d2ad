"""Steps: journaled once, replayed from the journal, typed, retried, timed out."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import kinds, status_is, timers_caught_up, until
from .journal_sql import query

CALLS: list[str] = []


@dataclasses.dataclass
class Receipt:
    id: str
    cents: int


@durable.step
async def charge(order: str, cents: int) -> Receipt:
    CALLS.append(f"charge {order}")
    return Receipt(f"r-{order}", cents)


def lookup(key: str) -> tuple[str, int]:
    CALLS.append(f"lookup {threading.current_thread() is threading.main_thread()}")
    return [key, len(key)]  # type: ignore[return-value]  # decoded to a tuple by the hint


@durable.workflow(name="steps.memo")
async def memo(ctx: durable.WorkflowContext, order: str) -> dict[str, Any]:
    receipt = await charge(order, 1999)
    pair = await ctx.step("lookup", lookup, order)
    gate = await ctx.wait_for_event("go")
    return {
        "receipt": receipt,
        "pair": pair,
        "types": [type(receipt).__name__, type(pair).__name__],
        "gate": gate,
    }


async def test_completed_steps_are_not_run_again_after_a_restart(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(memo, "o-1", run_id="memo")
        await status_is(rt, "memo", "waiting")
    assert CALLS == ["charge o-1", "lookup False"]

    async with durable.Runtime(db) as rt:
        await rt.send_event("memo", "go", 1)
        result = await rt.handle("memo").result(timeout=10)
    assert CALLS == ["charge o-1", "lookup False"]
    assert result == {
        "receipt": {"id": "r-o-1", "cents": 1999},
        "pair": ["o-1", 3],
        "types": ["Receipt", "tuple"],
        "gate": 1,
    }


async def test_ctx_step_and_a_step_function_are_the_same_journaled_call(db: Path) -> None:
    @durable.workflow(name="steps.direct")
    async def direct(ctx: durable.WorkflowContext) -> Receipt:
        return await charge("x", 1)

    @durable.workflow(name="steps.via_ctx")
    async def via_ctx(ctx: durable.WorkflowContext) -> Receipt:
        return await ctx.step(charge, "x", 1)

    async with durable.Runtime(db) as rt:
        a = await (await rt.start(direct, run_id="a")).result()
        b = await (await rt.start(via_ctx, run_id="b")).result()
        assert a == b == Receipt("r-x", 1)
        assert await kinds(rt, "a") == await kinds(rt, "b")
        assert await kinds(rt, "a") == [
            (0, "step.started", "charge"),
            (0, "step.completed", "charge"),
        ]


async def test_step_outside_a_workflow_is_a_plain_call() -> None:
    CALLS.clear()
    assert await charge("plain", 5) == Receipt("r-plain", 5)
    assert CALLS == ["charge plain"]


async def test_step_result_is_committed_before_the_next_step_runs(db: Path) -> None:
    """A result is committed with the run's next write, before any later step body runs."""
    seen: list[list[str]] = []

    async def look() -> None:
        rows = query(db, "SELECT kind FROM events ORDER BY seq")
        seen.append([kind for (kind,) in rows])

    @durable.workflow(name="steps.committed")
    async def committed(ctx: durable.WorkflowContext) -> None:
        await charge("c", 1)
        await ctx.step(look)

    async with durable.Runtime(db) as rt:
        await (await rt.start(committed)).result()
    assert seen == [["step.started", "step.completed", "step.started"]]


async def test_value_that_cannot_be_stored_fails_the_step_on_its_first_run(db: Path) -> None:
    outcomes: list[str] = []

    async def unstorable() -> object:
        return object()

    @durable.workflow(name="steps.unstorable")
    async def wf(ctx: durable.WorkflowContext) -> str:
        try:
            await ctx.step("bad", unstorable)
        except durable.SerializationError as exc:
            outcomes.append(str(exc))
            await ctx.wait_for_event("again")
            return "caught"
        return "stored?"

    async with durable.Runtime(db) as rt:
        await rt.start(wf, run_id="u")
        await status_is(rt, "u", "waiting")
    async with durable.Runtime(db) as rt:
        await rt.send_event("u", "again")
        assert await rt.handle("u").result(timeout=10) == "caught"
    assert len(outcomes) == 2 and outcomes[0] == outcomes[1]
    assert "'bad'" in outcomes[0] and "builtins.object" in outcomes[0]


async def test_retries_then_step_failed_identical_on_replay(db: Path) -> None:
    attempts: list[int] = []
    seen: list[tuple[str, str, str, int]] = []

    @durable.step(retry=durable.RetryPolicy(max_attempts=3, initial_interval=60))
    async def flaky() -> None:
        attempts.append(durable.step_info().attempt)
        raise ValueError(f"boom {len(attempts)}")

    @durable.workflow(name="steps.retries")
    async def wf(ctx: durable.WorkflowContext) -> str:
        try:
            await flaky()
        except durable.StepFailed as exc:
            seen.append((exc.code, exc.error_type, exc.message, exc.attempts))
            await ctx.wait_for_event("again")
        return "done"

    clock = durable.VirtualClock()
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(wf, run_id="r")
        with clock.awaiting(lambda: bool(seen)):  # skip the retries' waits
            await status_is(rt, "r", "waiting")
        history = await rt.history("r")
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.send_event("r", "again")
        assert await rt.handle("r").result(timeout=10) == "done"
    assert attempts == [1, 2, 3]
    assert seen == [("STEP_FAILED", "ValueError", "boom 3", 3)] * 2
    failures = [e["payload"] for e in history if e["kind"] == "step.failed"]
    assert [f.get("retry_at") is not None for f in failures] == [True, True, False]
    assert failures[1]["retry_at"] - failures[0]["retry_at"] == pytest.approx(60, abs=1)


async def test_non_retryable_error_fails_at_once(db: Path) -> None:
    calls: list[int] = []

    @durable.step(retry=durable.RetryPolicy(max_attempts=5, non_retryable=(KeyError,)))
    async def fussy() -> None:
        calls.append(1)
        raise KeyError("nope")

    @durable.workflow(name="steps.non_retryable")
    async def wf(ctx: durable.WorkflowContext) -> None:
        await fussy()

    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(wf)).result()
    assert calls == [1]
    assert failed.value.error["code"] == "STEP_FAILED"
    assert failed.value.error["error_type"] == "KeyError"


async def test_retry_wait_is_durable_across_a_restart(db: Path) -> None:
    calls: list[float] = []
    clock = durable.VirtualClock(auto_skip=False)

    @durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=100, max_interval=500))
    async def later() -> str:
        calls.append(clock.now())
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    @durable.workflow(name="steps.durable_backoff")
    async def wf(ctx: durable.WorkflowContext) -> str:
        return await later()

    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(wf, run_id="b")
        await status_is(rt, "b", "sleeping")
        clock.advance(40)
    async with durable.Runtime(db, clock=clock) as rt:

        async def parked_until_retry() -> bool:
            return rt.timers.next_deadline() == calls[0] + 100

        await until(parked_until_retry)
        clock.advance(59)
        await timers_caught_up(rt)
        assert rt.timers.next_deadline() == calls[0] + 100  # the retry is not due yet
        assert len(calls) == 1
        clock.advance(1)
        assert await rt.handle("b").result(timeout=10) == "ok"
    assert calls[1] - calls[0] == 100


async def test_step_timeout_is_a_failed_attempt(db: Path) -> None:
    @durable.step(timeout=0.05, retry=durable.RetryPolicy(max_attempts=2, initial_interval=0))
    async def slow() -> None:
        await asyncio.Event().wait()

    @durable.workflow(name="steps.timeout")
    async def wf(ctx: durable.WorkflowContext) -> None:
        await slow()

    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(wf, run_id="t")).result(timeout=10)
        failures = [e["payload"] for e in await rt.history("t") if e["kind"] == "step.failed"]
    assert failed.value.error["error_type"] == "StepTimeout"
    assert failed.value.error["attempts"] == 2
    assert [f["error"]["code"] for f in failures] == ["STEP_TIMEOUT", "STEP_TIMEOUT"]


async def test_gathered_steps_take_positions_in_call_order(db: Path) -> None:
    async def echo(value: int) -> int:
        await asyncio.sleep(0.001 * (5 - value))
        return value

    @durable.workflow(name="steps.gather")
    async def wf(ctx: durable.WorkflowContext) -> list[int]:
        values = await asyncio.gather(*(ctx.step(f"echo{i}", echo, i) for i in range(5)))
        await ctx.wait_for_event("go")
        return list(values)

    async with durable.Runtime(db) as rt:
        await rt.start(wf, run_id="g")
        await status_is(rt, "g", "waiting")
        first = [k for k in await kinds(rt, "g") if k[1] == "step.started"]
    assert first == [(i, "step.started", f"echo{i}") for i in range(5)]
    async with durable.Runtime(db) as rt:
        await rt.send_event("g", "go")
        assert await rt.handle("g").result(timeout=10) == [0, 1, 2, 3, 4]


async def test_workflow_failed_names_the_original_error_of_the_step(db: Path) -> None:
    @durable.step(name="charge", retry=durable.RetryPolicy(max_attempts=3, initial_interval=1))
    async def declined() -> None:
        raise ValueError("card declined")

    @durable.workflow(name="steps.declined")
    async def wf(ctx: durable.WorkflowContext) -> None:
        await declined()

    story = "StepFailed: step 'charge' failed after 3 attempts: ValueError: card declined"
    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(wf, run_id="x")).result(timeout=10)
        assert str(failed.value) == f"run 'x' failed: {story} (code STEP_FAILED)"
    async with durable.Runtime(db) as rt:  # read back from the journal alone
        with pytest.raises(durable.WorkflowFailed, match=f"^run 'x' failed: {re.escape(story)}"):
            await rt.handle("x").result(timeout=10)
    one = durable.StepFailed("s", "KeyError", "'k'", 1)
    assert str(one) == "step 's' failed after 1 attempt: KeyError: 'k'"
