"""Events between runs, readable state, concurrent calls, patches, deadlines."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import kinds, status_is, timers_caught_up

BODIES: list[str] = []


async def _record(name: str, value: Any = None, delay: float = 0.0) -> Any:
    BODIES.append(name)
    await asyncio.sleep(delay)
    return value if value is not None else name


# -- events between runs ------------------------------------------------------


@durable.workflow(name="compose.receiver")
async def receiver(ctx: durable.WorkflowContext, count: int) -> list[Any]:
    return [await ctx.wait_for_event("note") for _ in range(count)]


@durable.workflow(name="compose.sender")
async def sender(ctx: durable.WorkflowContext, target: str) -> str:
    await ctx.send_event(target, "note", {"from": ctx.run_id})
    await ctx.wait_for_event("go")
    return "sent"


@durable.workflow(name="compose.sends_nowhere")
async def sends_nowhere(ctx: durable.WorkflowContext, target: str) -> str:
    try:
        await ctx.send_event(target, "note", 1)
    except durable.RunNotFound as error:
        outcome = f"not found {error.run_id}"
    except durable.DurableError as error:
        outcome = f"{error.code}: {error}"
    await ctx.wait_for_event("go")
    return outcome


async def test_an_event_sent_by_a_workflow_is_delivered_once_across_replays(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(receiver, 2, run_id="r")
        await rt.start(sender, "r", run_id="s")
        await status_is(rt, "s", "waiting")
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("s", "go")
        assert await rt.handle("s").result(timeout=10) == "sent"
        await rt.send_event("r", "note", "second")
        assert await rt.handle("r").result(timeout=10) == [{"from": "s"}, "second"]
        messages = [e for e in await rt.history("r") if e["kind"] == "message"]
        assert [m["payload"] for m in messages] == [{"from": "s"}, "second"]


async def test_a_send_whose_journal_entry_was_lost_is_not_delivered_twice(
    sqlite_db: Path,
) -> None:
    """The crash window: the event committed, the sender's ``event.sent`` did not. The
    replay sends again with the same key, and nothing arrives twice."""
    db = sqlite_db
    async with durable.Runtime(db) as rt:
        await rt.start(receiver, 2, run_id="r")
        await rt.start(sender, "r", run_id="s")
        await status_is(rt, "s", "waiting")
    with sqlite3.connect(db) as conn:  # the sender's journal as if it died right after sending
        assert conn.execute("DELETE FROM events WHERE run_id = 's'").rowcount == 2
    async with durable.Runtime(db) as rt:
        await rt.send_event("s", "go")
        assert await rt.handle("s").result(timeout=10) == "sent"
        messages = [e for e in await rt.history("r") if e["kind"] == "message"]
        assert [m["payload"] for m in messages] == [{"from": "s"}]


async def test_sending_to_a_missing_or_ended_run_fails_identically_on_replay(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await (await rt.start(receiver, 0, run_id="done")).result(timeout=10)
        await rt.start(sends_nowhere, "nobody", run_id="a")
        await rt.start(sends_nowhere, "done", run_id="b")
        await status_is(rt, "a", "waiting")
        await status_is(rt, "b", "waiting")
    async with durable.Runtime(db, always_replay=True) as rt:
        for run_id in ("a", "b"):
            await rt.send_event(run_id, "go")
        assert await rt.handle("a").result(timeout=10) == "not found nobody"
        ended = await rt.handle("b").result(timeout=10)
        assert ended.startswith("RUN_ENDED: run 'done' has ended completed")


async def test_a_keyed_event_from_outside_is_kept_once(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(receiver, 2, run_id="r")
        await rt.send_event("r", "note", "a", key="delivery-1")
        await rt.send_event("r", "note", "a again", key="delivery-1")  # a retried webhook
        await rt.send_event("r", "note", "b", key="delivery-2")
        assert await rt.handle("r").result(timeout=10) == ["a", "b"]
        with pytest.raises(ValueError, match="key"):
            await rt.send_event("r", "note", "c", key="")


# -- state ----------------------------------------------------------------------


@durable.workflow(name="compose.progress")
async def progress(ctx: durable.WorkflowContext, items: int) -> dict[str, Any]:
    ctx.state.set("phase", "fetching")
    for i in range(items):
        await ctx.step("fetch", _record, f"item {i}")
        ctx.state.set("done", i + 1)
    ctx.state.set("scratch", [1, 2])
    ctx.state.delete("scratch")
    ctx.state.set("phase", "review")
    await ctx.wait_for_event("approve")
    snapshot = ctx.state.snapshot()
    ctx.state.clear()
    ctx.state.set("phase", "finished")
    return snapshot


async def test_state_is_journaled_readable_elsewhere_and_rebuilt_on_replay(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(progress, 2, run_id="p")
        assert await rt.wait_state("p", "phase", timeout=10) in ("fetching", "review")
        await status_is(rt, "p", "waiting")
        async with durable.Runtime(db, recover=False) as client:
            assert await client.get_state("p") == {"phase": "review", "done": 2}
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("p", "approve")
        assert await rt.handle("p").result(timeout=10) == {"phase": "review", "done": 2}
        assert await rt.get_state("p") == {"phase": "finished"}
        with pytest.raises(durable.RunNotFound):
            await rt.get_state("nope")


@durable.workflow(name="compose.publisher")
async def publisher(ctx: durable.WorkflowContext) -> None:
    await ctx.wait_for_event("begin")
    ctx.state.set("answer", 42)
    await ctx.wait_for_event("end")


async def test_wait_state_hears_a_key_set_by_another_runtime(db: Path) -> None:
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as client:
        await rt.start(publisher, run_id="p")
        await status_is(rt, "p", "waiting")
        waiting = asyncio.ensure_future(client.wait_state("p", "answer", timeout=10))
        await asyncio.sleep(0)
        assert not waiting.done()
        await client.send_event("p", "begin")
        assert await waiting == 42
        with pytest.raises(TimeoutError, match="'never'"):
            await client.wait_state("p", "never", timeout=0.2)
        await client.send_event("p", "end")
        await rt.handle("p").result(timeout=10)
        with pytest.raises(durable.DurableError, match="ended completed without setting"):
            await client.wait_state("p", "never", timeout=5)
        with pytest.raises(durable.RunNotFound):
            await client.wait_state("nope", "answer", timeout=5)


async def test_a_state_value_that_cannot_be_stored_fails_at_the_call(db: Path) -> None:
    @durable.workflow(name="compose.bad_state")
    async def bad_state(ctx: durable.WorkflowContext) -> str:
        try:
            ctx.state.set("when", object())
        except durable.SerializationError:
            return f"refused, state {ctx.state.snapshot()}"
        return "stored"

    async with durable.Runtime(db) as rt:
        assert (
            await (await rt.start(bad_state, run_id="b")).result(timeout=10) == "refused, state {}"
        )
        assert await rt.get_state("b") == {}
        assert await kinds(rt, "b") == []


# -- concurrent calls -------------------------------------------------------------


@durable.workflow(name="compose.together")
async def together(ctx: durable.WorkflowContext) -> dict[str, Any]:
    listed = await ctx.parallel(
        ctx.step("slow", _record, "slow", None, 0.05), ctx.step("fast", _record, "fast")
    )
    named = await ctx.gather(
        b=ctx.step("b", _record, "b", None, 0.03), a=ctx.step("a", _record, "a")
    )
    return {"listed": listed, "named": named}


async def test_parallel_and_gather_take_positions_in_argument_order(db: Path) -> None:
    BODIES.clear()
    async with durable.Runtime(db, always_replay=True) as rt:
        result = await (await rt.start(together, run_id="t")).result(timeout=10)
        assert result == {"listed": ["slow", "fast"], "named": {"b": "b", "a": "a"}}
        started = [(p, n) for p, k, n in await kinds(rt, "t") if k == "step.started"]
        assert started == [(0, "slow"), (1, "fast"), (2, "b"), (3, "a")]
    assert sorted(BODIES) == ["a", "b", "fast", "slow"]


@durable.workflow(name="compose.parallel_error")
async def parallel_error(ctx: durable.WorkflowContext) -> str:
    try:
        await ctx.parallel(ctx.step("ok", _record, "ok", None, 0.02), ctx.step("boom", _boom))
    except durable.StepFailed as failed:
        return f"{failed.step}: {failed.message}"
    return "no error"


async def _boom() -> None:
    BODIES.append("boom")
    raise ValueError("bad 7")


async def test_parallel_runs_every_call_to_its_end_then_raises_the_first_error(
    db: Path,
) -> None:
    BODIES.clear()
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(parallel_error, run_id="e")).result(timeout=10) == (
            "boom: bad 7"
        )
    assert sorted(BODIES) == ["boom", "ok"]  # "ok" finished though "boom" failed first


@durable.workflow(name="compose.race")
async def race(ctx: durable.WorkflowContext) -> list[Any]:
    index, value = await ctx.first(
        ctx.step("tortoise", _record, "tortoise", None, 0.2),
        ctx.step("hare", _record, "hare"),
    )
    await ctx.wait_for_event("go")
    return [index, value]


async def test_first_journals_its_winner_and_a_replay_takes_the_same_branch(db: Path) -> None:
    BODIES.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(race, run_id="r")
        await status_is(rt, "r", "waiting")
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("r", "go")
        assert await rt.handle("r").result(timeout=10) == [1, "hare"]
        journal = await kinds(rt, "r")
        assert (2, "first.won", "first") in journal
        # The tortoise was cancelled mid-step and never run again on replay.
        assert [k for p, k, _ in journal if p == 0] == ["step.started"]
    assert sorted(BODIES) == ["hare", "tortoise"]


@durable.step(name="runner")
async def runner(name: str, delay: float) -> str:
    return str(await _record(name, None, delay))


@durable.workflow(name="compose.race_of_step_functions")
async def race_of_step_functions(ctx: durable.WorkflowContext) -> list[Any]:
    index, value = await ctx.first(runner("tortoise", 0.2), runner("hare", 0.0))
    after = await runner("after", 0.0)
    await ctx.wait_for_event("go")
    return [index, value, after]


async def test_a_race_of_step_functions_replays_its_positions(db: Path) -> None:
    """Step functions called inside a workflow take their positions when called, so the
    loser, closed unawaited on replay, leaves the winner and later calls where they were."""
    BODIES.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(race_of_step_functions, run_id="r")
        await status_is(rt, "r", "waiting")
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("r", "go")
        assert await rt.handle("r").result(timeout=10) == [1, "hare", "after"]
    assert sorted(BODIES) == ["after", "hare", "tortoise"]


async def test_a_checkpointed_awaitable_runs_once_and_is_closed_on_replay(db: Path) -> None:
    @durable.workflow(name="compose.checkpoint")
    async def checkpoint(ctx: durable.WorkflowContext) -> str:
        value = await ctx.step("fetch", _record("fetched"))
        await ctx.wait_for_event("go")
        return str(value)

    BODIES.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(checkpoint, run_id="c")
        await status_is(rt, "c", "waiting")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would be one
        async with durable.Runtime(db, always_replay=True) as rt:
            await rt.send_event("c", "go")
            assert await rt.handle("c").result(timeout=10) == "fetched"
    assert BODIES == ["fetched"]


# -- patched --------------------------------------------------------------------------


async def test_patched_twice_with_one_id_is_refused(db: Path) -> None:
    @durable.workflow(name="compose.patched_twice")
    async def twice(ctx: durable.WorkflowContext) -> str:
        assert ctx.patched("fix-1") is True
        try:
            ctx.patched("fix-1")
        except ValueError as error:
            return str(error)
        return "accepted"

    async with durable.Runtime(db) as rt:
        message = await (await rt.start(twice, run_id="p")).result(timeout=10)
        assert "ctx.patched('fix-1') was called twice" in message
        assert (0, "patch.applied", "fix-1") in await kinds(rt, "p")


# -- deadlines ----------------------------------------------------------------------


@durable.workflow(name="compose.deadline", timeout=60)
async def with_deadline(ctx: durable.WorkflowContext) -> str:
    await ctx.start_child(receiver, 1)
    return str(await ctx.wait_for_event("never"))


async def test_a_deadline_fails_the_run_and_cancels_its_children(db: Path) -> None:
    clock = durable.VirtualClock(auto_skip=False)  # the child waits with no timer
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(with_deadline, run_id="d")
        await status_is(rt, "d.0", "waiting")
        await status_is(rt, "d", "waiting")  # its own wait journaled too
        clock.advance(59)
        await timers_caught_up(rt)
        assert (await rt.get_run("d")).status is durable.RunStatus.WAITING
        clock.advance(1)
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result(timeout=10)
        assert failed.value.error["code"] == "WORKFLOW_TIMEOUT"
        assert (await status_is(rt, "d.0", "cancelled")).status is durable.RunStatus.CANCELLED
        info = await rt.get_run("d")
        assert info.deadline is not None and info.error is not None
        assert info.error["type"] == "WorkflowTimeout"


async def test_a_deadline_that_passed_while_no_process_ran_fails_the_run_at_open(
    db: Path,
) -> None:
    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start_run(receiver, [1], {}, run_id="d", timeout=30)
        await status_is(rt, "d", "waiting")
    clock.advance(31)
    async with durable.Runtime(db, clock=clock) as rt:
        with pytest.raises(durable.WorkflowFailed, match="WorkflowTimeout"):
            await rt.handle("d").result(timeout=10)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "10"])
async def test_a_deadline_must_be_a_positive_number(db: Path, bad: Any) -> None:
    error = TypeError if isinstance(bad, str) else ValueError
    with pytest.raises(error, match="timeout"):
        durable.workflow(name="compose.bad_deadline", timeout=bad)
    async with durable.Runtime(db) as rt:
        with pytest.raises(error, match="timeout"):
            await rt.start_run(receiver, [1], {}, timeout=bad)
        assert await rt.list_runs() == []


# -- fixes to what exists -------------------------------------------------------------


async def test_step_failed_message_is_the_original_message(db: Path) -> None:
    @durable.workflow(name="compose.step_failed")
    async def step_failed(ctx: durable.WorkflowContext) -> list[str]:
        try:
            await ctx.step("boom", _boom)
        except durable.StepFailed as failed:
            return [failed.message, str(failed)]
        return []

    async with durable.Runtime(db) as rt:
        message, text = await (await rt.start(step_failed, run_id="f")).result(timeout=10)
        assert message == "bad 7"
        assert text == "step 'boom' failed after 1 attempt: ValueError: bad 7"


async def test_a_run_id_of_another_version_is_a_mismatch(db: Path) -> None:
    @durable.workflow(name="compose.versioned", version="1")
    async def v1(ctx: durable.WorkflowContext) -> int:
        return 1

    @durable.workflow(name="compose.versioned", version="2")
    async def v2(ctx: durable.WorkflowContext) -> int:
        return 2

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(v1, run_id="v")).result(timeout=10) == 1
        with pytest.raises(durable.IdempotencyKeyMismatch, match="another version"):
            await rt.start(v2, run_id="v")
        assert await (await rt.start(v1, run_id="v")).result(timeout=10) == 1


USER_COMPOSITION_TESTS = """
import asyncio
import pytest
import durable

CALLS = []

async def work(name, delay=0.0):
    CALLS.append(name)
    await asyncio.sleep(delay)
    return name

@durable.workflow(name="user.kid")
async def kid(ctx, n):
    ctx.state.set("n", n)
    return await ctx.step("work", work, f"kid {n}")

@durable.workflow(name="user.team", timeout=3600)
async def team(ctx):
    ctx.state.set("phase", "fan-out")
    kids = await ctx.parallel(kid(1), kid(2))
    index, fast = await ctx.first(
        ctx.step("slow", work, "slow", 0.3), ctx.step("fast", work, "fast")
    )
    await ctx.send_event(ctx.run_id + "-inbox", "note", kids)
    answer = await ctx.wait_for_user("ok?", input_type="approval")
    new = ctx.patched("v2")
    ctx.state.set("phase", "done")
    return [kids, index, fast, answer, new]

@durable.workflow(name="user.inbox")
async def inbox(ctx):
    return await ctx.wait_for_event("note")

@pytest.mark.asyncio
async def test_team(durable_runtime):
    rt = durable_runtime
    notes = await rt.start(inbox, run_id="t-inbox")
    handle = await rt.start(team, run_id="t")
    await rt.wait_for_question("t", timeout=10)
    await rt.respond("t", "yes")
    assert await handle.result(timeout=10) == [["kid 1", "kid 2"], 1, "fast", "yes", True]
    assert await notes.result(timeout=10) == ["kid 1", "kid 2"]
    assert await rt.get_state("t") == {"phase": "done"}
    assert sorted(CALLS) == ["fast", "kid 1", "kid 2", "slow"]
"""


@pytest.mark.parametrize("replay", [False, True])
def test_composition_in_a_users_tests_and_under_always_replay(
    pytester: pytest.Pytester, replay: bool
) -> None:
    pytester.makepyfile(test_user=USER_COMPOSITION_TESTS)
    flags = ["--durable-always-replay"] if replay else []
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *flags)
    result.assert_outcomes(passed=1)
