"""``ctx.first`` after downtime: the branch that became ready first wins, and a losing
wait consumes nothing, also when every branch is ready by the time a runtime looks."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable
from durable.testing import replay

from .helpers import status_is

START = 1_767_225_600.0


@durable.workflow(name="races.timer_or_cancel")
async def timer_or_cancel(ctx: durable.WorkflowContext) -> list[object]:
    index, _ = await ctx.first(ctx.sleep(3600), ctx.wait_for_event("cancel"))
    try:
        left = await ctx.wait_for_event("cancel", timeout=0)
    except durable.WaitTimeout:
        left = None
    return [index, left]


@pytest.mark.parametrize(("sent_after", "expected"), [(1800, [1, None]), (5400, [0, "stop"])])
async def test_the_branch_ready_first_wins_after_downtime(
    db: Path | str, sent_after: float, expected: list[object]
) -> None:
    """The run races an hour's timer against an event; the event is sent while no
    runtime runs (half an hour in, or an hour and a half in); a runtime comes back
    two hours in and finds both ready."""
    clock = durable.VirtualClock(START, auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(timer_or_cancel, run_id="race")
        await status_is(rt, "race", "waiting")
    clock.advance(sent_after)
    async with durable.Runtime(db, clock=clock, recover=False) as client:
        await client.send_event("race", "cancel", "stop")
    clock.advance(7200 - sent_after)
    async with durable.Runtime(db, clock=clock) as rt:
        assert await rt.handle("race").result(timeout=10) == expected
        history = await rt.export("race")
    await replay(timer_or_cancel, history)  # the journal replays to the same branch
