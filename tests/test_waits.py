"""Human input and events: journaled questions, validated answers, ordered events."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import crash

from .helpers import status_is, until


@durable.workflow(name="waits.approve")
async def approve(ctx: durable.WorkflowContext, order: str) -> str:
    answer = await ctx.wait_for_user(
        f"Ship {order}?",
        input_type="approval",
        options=[{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}],
    )
    return str(answer)


async def pending(rt: durable.Runtime, run_id: str) -> list[durable.PendingWait]:
    async def check() -> list[durable.PendingWait]:
        return await rt.pending_waits(run_id)

    return await until(check)


async def test_pending_waits_then_respond(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(approve, "o-1", run_id="a")
        (wait,) = await pending(rt, "a")
        assert (wait.run_id, wait.wait_id, wait.question, wait.input_type) == (
            "a",
            "user:0",
            "Ship o-1?",
            "approval",
        )
        assert wait.options == [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}]
        assert wait.deadline is None
        assert await rt.pending_waits() == [wait]
        await status_is(rt, "a", "waiting")  # parking commits just after the wait's start

        await rt.respond("a", "yes")
        answers = [e for e in await rt.history("a") if e["kind"] == "message"]
        assert [(a["name"], a["payload"]) for a in answers] == [("user:0", "yes")]
        assert await handle.result(timeout=5) == "yes"
        assert await rt.pending_waits() == []


async def test_invalid_answers_and_missing_waits_record_nothing(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(approve, "o-2", run_id="a")
        await pending(rt, "a")
        before = await rt.history("a")
        with pytest.raises(durable.InvalidResponse, match=r"'maybe'.*\['yes', 'no'\]"):
            await rt.respond("a", "maybe")
        with pytest.raises(durable.NoPendingWait, match="wait_id 'user:9'"):
            await rt.respond("a", "yes", wait_id="user:9")
        with pytest.raises(durable.RunNotFound):
            await rt.respond("nope", "yes")
        assert await rt.history("a") == before
        await rt.respond("a", "no")
        with pytest.raises(durable.NoPendingWait):
            await rt.respond("a", "yes")
        assert await rt.handle("a").result(timeout=5) == "no"
        with pytest.raises(durable.NoPendingWait):
            await rt.respond("a", "yes")


async def test_choice_text_and_wait_id(db: Path) -> None:
    @durable.workflow(name="waits.form")
    async def form(ctx: durable.WorkflowContext) -> list[Any]:
        color, note = await asyncio.gather(
            ctx.wait_for_user("Color?", input_type="choice", options=["red", "blue"]),
            ctx.wait_for_user("Anything else?"),
        )
        return [color, note]

    async with durable.Runtime(db) as rt:
        handle = await rt.start(form, run_id="f")

        async def both() -> list[durable.PendingWait]:
            waits = await rt.pending_waits("f")
            return waits if len(waits) == 2 else []

        color, note = await until(both)
        assert (color.input_type, note.input_type, note.options) == ("choice", "text", None)
        await rt.respond("f", {"free": ["form", 1]}, wait_id=note.wait_id)
        with pytest.raises(durable.InvalidResponse):
            await rt.respond("f", "green", wait_id=color.wait_id)
        await rt.respond("f", "blue")
        assert await handle.result(timeout=5) == ["blue", {"free": ["form", 1]}]


async def test_wait_timeout_raises_in_the_workflow(db: Path) -> None:
    @durable.workflow(name="waits.timeout")
    async def impatient(ctx: durable.WorkflowContext) -> str:
        try:
            return str(await ctx.wait_for_user("Quick?", timeout=3600))
        except durable.WaitTimeout as exc:
            return f"timed out: {exc.code}"

    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        assert await (await rt.start(impatient)).result(timeout=5) == "timed out: WAIT_TIMEOUT"


async def test_wait_answered_before_its_timeout(db: Path) -> None:
    @durable.workflow(name="waits.in_time")
    async def in_time(ctx: durable.WorkflowContext) -> str:
        return str(await ctx.wait_for_user("Quick?", timeout=60))

    clock = durable.VirtualClock(auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(in_time, run_id="q")
        (wait,) = await pending(rt, "q")
        assert wait.deadline is not None
        assert wait.deadline.timestamp() == clock.now() + 60
        clock.advance(59)
        await rt.respond("q", "here")
        assert await handle.result(timeout=5) == "here"


@durable.workflow(name="waits.collect")
async def collect(ctx: durable.WorkflowContext, count: int) -> list[Any]:
    await ctx.wait_for_event("start")
    return [await ctx.wait_for_event("item") for _ in range(count)]


async def test_events_sent_before_the_wait_are_kept_in_order(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(collect, 3, run_id="c")
        for item in ({"n": 1}, "two", [3]):
            await rt.send_event("c", "item", item)
        await rt.send_event("c", "ignored-name", "x")
        await rt.send_event("c", "start")
        assert await handle.result(timeout=5) == [{"n": 1}, "two", [3]]


async def test_events_sent_while_no_runtime_runs_the_workflow(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(collect, 2, run_id="c")
        await status_is(rt, "c", "waiting")
    async with durable.Runtime(db, recover=False) as tool:
        await tool.send_event("c", "start")
        await tool.send_event("c", "item", 1)
        await tool.send_event("c", "item", 2)
        assert (await tool.get_run("c")).status is durable.RunStatus.WAITING
    async with durable.Runtime(db) as rt:
        assert await rt.handle("c").result(timeout=5) == [1, 2]
        with pytest.raises(durable.DurableError, match="completed"):
            await rt.send_event("c", "item", 3)
        with pytest.raises(durable.RunNotFound):
            await rt.send_event("nope", "item")
        with pytest.raises(ValueError, match="reserved"):
            await rt.send_event("c", "user:0")


async def test_answer_from_another_runtime_on_the_same_file(db: Path) -> None:
    async with durable.Runtime(db) as rt, durable.Runtime(db, recover=False) as other:
        handle = await rt.start(approve, "o-3", run_id="a")
        await pending(rt, "a")
        await other.respond("a", "yes")
        assert await handle.result(timeout=5) == "yes"


async def test_bad_wait_arguments(db: Path) -> None:
    @durable.workflow(name="waits.bad")
    async def bad(ctx: durable.WorkflowContext, kind: str) -> None:
        await ctx.wait_for_user("?", input_type=kind)  # type: ignore[arg-type]

    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed, match="input_type"):
            await (await rt.start(bad, "essay")).result()
        with pytest.raises(durable.WorkflowFailed, match="needs options"):
            await (await rt.start(bad, "choice")).result()


@durable.workflow(name="waits.nap_then_ask")
async def nap_then_ask(ctx: durable.WorkflowContext) -> str:
    await ctx.sleep(0.2)
    return str(await ctx.wait_for_user("Ready?", input_type="approval"))


async def test_wait_for_question_waits_until_the_run_asks(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(nap_then_ask, run_id="q")
        with pytest.raises(durable.NoPendingWait):
            await rt.respond("q", "yes")  # still sleeping: why the quickstart needs this
        wait = await rt.wait_for_question("q", timeout=10)
        assert (wait.run_id, wait.question, wait.input_type) == ("q", "Ready?", "approval")
        await rt.respond("q", "yes")
        assert await handle.result(timeout=10) == "yes"


async def test_wait_for_question_sees_a_question_asked_in_another_runtime(db: Path) -> None:
    async with durable.Runtime(db, recover=False) as client, durable.Runtime(db):
        await client.start(nap_then_ask, run_id="elsewhere")  # the worker runs it
        wait = await client.wait_for_question("elsewhere", timeout=10)
        assert wait.question == "Ready?"


async def test_wait_for_question_timeout_names_the_run_and_its_status(db: Path) -> None:
    async with durable.Runtime(db, recover=False) as rt:
        await rt.start(nap_then_ask, run_id="nobody-runs-it")
        with pytest.raises(TimeoutError, match=r"'nobody-runs-it' asked no question .* pending"):
            await rt.wait_for_question("nobody-runs-it", timeout=0.2)


@durable.workflow(name="waits.asks_nothing")
async def asks_nothing(ctx: durable.WorkflowContext) -> int:
    return 1


async def test_wait_for_question_of_a_run_that_ends_without_asking(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(asks_nothing, run_id="quiet")
        with pytest.raises(durable.DurableError, match="'quiet' ended completed without"):
            await rt.wait_for_question("quiet", timeout=10)
        with pytest.raises(durable.RunNotFound):
            await rt.wait_for_question("no-such-run", timeout=10)


@durable.workflow(name="waits.peek")
async def peek(ctx: durable.WorkflowContext) -> list[str]:
    seen = []
    for name in ("sent", "unsent"):
        try:
            seen.append(str(await ctx.wait_for_event(name, timeout=0)))
        except durable.WaitTimeout:
            seen.append(f"no {name}")
    try:
        seen.append(str(await ctx.wait_for_user("Now?", timeout=dt.timedelta(0))))
    except durable.WaitTimeout as error:
        seen.append(error.code)
    await ctx.wait_for_event("go")
    return seen


async def test_a_zero_timeout_checks_without_waiting_and_replays_the_same(db: Path) -> None:
    async with durable.Runtime(db, recover=False) as tool:  # nothing runs it yet
        await tool.start(peek, run_id="p")
        await tool.send_event("p", "sent", "hello")
    rt = durable.Runtime(db)
    await rt.open()
    try:
        await status_is(rt, "p", "waiting")  # on "go", past the three checks
        checks = [e for e in await rt.history("p") if e["kind"] == "wait.completed"]
        assert [("timed_out" in e["payload"], e["name"]) for e in checks] == [
            (False, "sent"),
            (True, "unsent"),
            (True, "user:2"),
        ]
        # Now there is something to find, but the replay takes the journaled path.
        await rt.send_event("p", "unsent", "late")
        rt = await crash(rt)
        await rt.send_event("p", "go")
        assert await rt.handle("p").result(timeout=10) == ["hello", "no unsent", "WAIT_TIMEOUT"]
        assert [e for e in await rt.history("p") if e["kind"] == "wait.completed"][:3] == checks
    finally:
        await rt.close()


@pytest.mark.parametrize("timeout", [-1, -0.001, float("nan"), float("inf")])
async def test_negative_and_unbounded_wait_timeouts_are_refused(
    sqlite_db: Path, timeout: float
) -> None:
    @durable.workflow(name="waits.bad_timeout")
    async def bad_timeout(ctx: durable.WorkflowContext) -> list[str]:
        refused = []
        try:
            await ctx.wait_for_event("e", timeout=timeout)
        except ValueError as error:
            refused.append(str(error))
        try:
            await ctx.wait_for_user("q?", timeout=timeout)
        except ValueError as error:
            refused.append(str(error))
        return refused

    async with durable.Runtime(sqlite_db) as rt:
        refused = await (await rt.start(bad_timeout)).result(timeout=5)
        assert len(refused) == 2
        assert all("a wait's timeout must be a finite number of seconds >= 0" in r for r in refused)
