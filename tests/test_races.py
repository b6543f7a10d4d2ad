"""``ctx.first`` after downtime: the branch that became ready first wins, and a losing
wait consumes nothing, also when every branch is ready by the time a runtime looks."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable
from durable.testing import replay

from .helpers import status_is, until
from .journal_sql import execute, query

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


@durable.workflow(name="races.pay_after_timer")
async def pay_after_timer(ctx: durable.WorkflowContext) -> list[object]:
    index, _ = await ctx.first(ctx.sleep(1), ctx.wait_for_event("pay"))
    first_wait = await ctx.wait_for_event("pay", timeout=60)
    try:
        second_wait = await ctx.wait_for_event("pay", timeout=5)
    except durable.WaitTimeout:
        second_wait = None
    return [index, first_wait, second_wait]


async def _raced_after_downtime(db: Path | str, clock: durable.VirtualClock) -> None:
    """The run parks in the race; one "pay" is sent after its timer fell due."""
    async with durable.Runtime(db, clock=clock) as rt:
        await rt.start(pay_after_timer, run_id="pay")
        await status_is(rt, "pay", "waiting")
    clock.advance(2)
    async with durable.Runtime(db, clock=clock, recover=False) as client:
        await client.send_event("pay", "pay", 1)


async def _at_second_wait(rt: durable.Runtime) -> None:
    """Until the run, taken by ``rt`` (a moment after it opened), waits its 5 s."""

    async def there() -> bool:
        history = await rt.history("pay")
        return any(e["kind"] == "wait.started" and e["position"] == 4 for e in history) and (
            "pay" in rt.loaded_runs | rt.unloaded_runs
        )

    await until(there)


async def test_an_event_given_back_by_a_losing_wait_is_delivered_once(db: Path | str) -> None:
    """The timer wins, the losing wait gives the event back, the next wait takes it:
    however often the run is replayed after that, no later wait gets it again."""
    clock = durable.VirtualClock(START, auto_skip=False)
    await _raced_after_downtime(db, clock)
    async with durable.Runtime(db, clock=clock) as rt:
        await _at_second_wait(rt)
    async with durable.Runtime(db, clock=clock) as rt:  # replayed from the journal
        await _at_second_wait(rt)
        clock.advance(10)
        assert await rt.handle("pay").result(timeout=10) == [0, 1, None]


async def test_a_crash_after_the_losing_wait_took_the_event_loses_nothing(
    db: Path | str,
) -> None:
    """A crash right after the losing wait journaled that it took the event (before it
    gave it back and the winner was journaled): the race runs again on recovery and
    the event still reaches the next wait."""
    clock = durable.VirtualClock(START, auto_skip=False)
    await _raced_after_downtime(db, clock)
    async with durable.Runtime(db, clock=clock) as rt:
        await _at_second_wait(rt)
    ((taken,),) = query(
        db, "SELECT min(seq) FROM events WHERE run_id = 'pay' AND kind = 'wait.completed'"
    )
    execute(db, "DELETE FROM events WHERE run_id = 'pay' AND seq > ?", (taken,))
    async with durable.Runtime(db, clock=clock) as rt:
        await _at_second_wait(rt)
        clock.advance(10)
        assert await rt.handle("pay").result(timeout=10) == [0, 1, None]


@durable.workflow(name="races.timer_or_two_waits")
async def timer_or_two_waits(ctx: durable.WorkflowContext) -> int:
    both = ctx.parallel(ctx.wait_for_event("a"), ctx.wait_for_user("ok?"))
    index, _ = await ctx.first(ctx.sleep(1), both)
    return index


async def test_a_branch_half_done_does_not_hold_the_race(db: Path | str) -> None:
    """One call of a branch finished, another still waits: the timer wins when due."""
    clock = durable.VirtualClock(START, auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(timer_or_two_waits, run_id="half")
        await status_is(rt, "half", "waiting")
        await rt.send_event("half", "a")
        clock.advance(2)
        assert await handle.result(timeout=10) == 0
