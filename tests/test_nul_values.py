"""Every value JSON can hold is stored and read back unchanged on both backends, U+0000
in a string included: answers, events, step results, and the export."""

from __future__ import annotations

from pathlib import Path

import durable

from .helpers import status_is

NUL = "a\u0000b"
ODD = {"k\u0000": ["\u0000", "\\u0000", "é\u2028", 2**63 - 1, -0.5, None, True]}


@durable.workflow(name="nul.values")
async def values(ctx: durable.WorkflowContext) -> list[object]:
    made = await ctx.step("make", lambda: NUL)
    first = await ctx.wait_for_user("first?")
    event = await ctx.wait_for_event("odd")
    second = await ctx.wait_for_user("second?")
    ctx.state.set("kept", ODD)
    return [made, first, event, second, ctx.state.get("kept")]


async def test_nul_round_trips_through_answers_events_steps_and_exports(
    db: Path | str,
) -> None:
    expected = [NUL, NUL, ODD, {"n": "\u0000"}, ODD]
    async with durable.Runtime(db) as rt:
        await rt.start(values, run_id="v")
        await rt.wait_for_question("v", timeout=10)
        await rt.respond("v", NUL)
        await status_is(rt, "v", "waiting")
        await rt.send_event("v", "odd", ODD)
        wait = await rt.wait_for_question("v", timeout=10)
        assert wait.question == "second?"
        await rt.respond("v", {"n": "\u0000"})  # after a wait.completed holding U+0000
        assert await rt.handle("v").result(timeout=10) == expected
        exported = await rt.export("v")
    async with durable.Runtime(db, recover=False) as rt:
        assert await rt.export("v") == exported
        assert (await rt.get_run("v")).output == expected
    payloads = [event["payload"] for event in exported["events"]]
    assert {"result": NUL} in payloads
    assert ODD in payloads and {"n": "\u0000"} in payloads
    assert exported["run"]["output"] == expected


@durable.workflow(name="nul.question")
async def question(ctx: durable.WorkflowContext) -> object:
    return await ctx.wait_for_user("anything?")


async def test_a_nul_answer_from_another_process_reaches_the_run(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(question, run_id="q")
        await rt.wait_for_question("q", timeout=10)
        async with durable.Runtime(db, recover=False) as client:
            await client.respond("q", "\u0000")
        assert await rt.handle("q").result(timeout=10) == "\u0000"
