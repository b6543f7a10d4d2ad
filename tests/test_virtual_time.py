"""The virtual clock skips only while a test awaits a run, one timer at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durable
from durable.testing import crash

from .helpers import status_is, timers_caught_up


@durable.workflow(name="vtime.gathered")
async def gathered(ctx: durable.WorkflowContext) -> list[str]:
    async def slept() -> str:
        await ctx.sleep(0.1)
        return "slept"

    async def timed_out() -> str:
        try:
            await ctx.wait_for_event("x", timeout=0.05)
        except durable.WaitTimeout:
            return "timed out"
        return "event"

    return list(await asyncio.gather(slept(), timed_out()))


@durable.workflow(name="vtime.ordered")
async def ordered(ctx: durable.WorkflowContext) -> list[int]:
    woke: list[int] = []

    async def nap(seconds: int) -> None:
        await ctx.sleep(seconds)
        woke.append(seconds)

    await asyncio.gather(nap(30), nap(10), nap(20), nap(10))
    return woke


@durable.workflow(name="vtime.ask_later")
async def ask_later(ctx: durable.WorkflowContext) -> str:
    await ctx.sleep(3600)
    answer: str = await ctx.wait_for_user("ok?", input_type="approval", timeout=60)
    return answer


@durable.workflow(name="vtime.nap")
async def nap(ctx: durable.WorkflowContext, seconds: float) -> float:
    await ctx.sleep(seconds)
    return seconds


async def test_gathered_sleep_and_wait_with_different_deadlines_both_end(db: Path) -> None:
    clock = durable.VirtualClock()
    start = clock.now()
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(gathered)
        assert await handle.result(timeout=5) == ["slept", "timed out"]
    assert clock.now() - start == pytest.approx(0.1)


async def test_gathered_timers_fire_in_deadline_order_and_none_is_lost(db: Path) -> None:
    clock = durable.VirtualClock()
    start = clock.now()
    async with durable.Runtime(db, clock=clock) as rt:
        assert await (await rt.start(ordered)).result(timeout=5) == [10, 10, 20, 30]
    assert clock.now() - start == 30


async def test_a_question_asked_after_a_sleep_waits_for_the_answer(db: Path) -> None:
    clock = durable.VirtualClock()
    start = clock.now()
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(ask_later)
        question = await rt.wait_for_question(handle.run_id, timeout=5)
        assert question.question == "ok?"
        assert clock.now() - start == 3600  # the sleep skipped, the question's timeout not
        await rt.respond(handle.run_id, "yes")
        assert await handle.result(timeout=5) == "yes"


async def test_time_holds_still_while_nobody_awaits_a_run(db: Path) -> None:
    clock = durable.VirtualClock()
    start = clock.now()
    async with durable.Runtime(db, clock=clock) as rt:
        handle = await rt.start(nap, 60.0, run_id="n")
        await status_is(rt, "n", "sleeping")
        await timers_caught_up(rt)
        assert clock.now() == start
        assert await handle.result(timeout=5) == 60.0
        assert clock.now() - start == 60


async def test_skipping_stops_once_the_awaited_run_ends(db: Path) -> None:
    clock = durable.VirtualClock()
    start = clock.now()
    async with durable.Runtime(db, clock=clock) as rt:
        long = await rt.start(nap, 86400.0, run_id="long")
        short = await rt.start(nap, 3600.0, run_id="short")
        await status_is(rt, "long", "sleeping")
        assert await short.result(timeout=5) == 3600.0
        assert clock.now() - start == 3600  # the day-long sleep was not skipped past
        assert (await long.status()) is durable.RunStatus.SLEEPING
        assert await long.result(timeout=5) == 86400.0
        assert clock.now() - start == 86400


@durable.step
async def send_reminder(name: str) -> str:
    return f"reminded {name}"


@durable.workflow(name="vtime.remind")
async def remind(ctx: durable.WorkflowContext, name: str) -> str:
    await ctx.sleep(30 * 86400)
    return await send_reminder(name)


async def test_a_crash_right_after_start_resumes_and_skips_the_sleep_every_time(db: Path) -> None:
    # The README's example, on both backends (the plugin's own run is below).
    for attempt in range(20):
        rt = durable.Runtime(db, clock=durable.VirtualClock())
        await rt.open()
        handle = await rt.start(remind, "ada", run_id=f"r{attempt}")
        rt = await crash(rt)
        try:
            assert await rt.handle(handle.run_id).result(timeout=5) == "reminded ada", attempt
        finally:
            await rt.close()


README_EXAMPLE = """
import pytest
import durable
from durable.testing import crash

@durable.step
async def send_reminder(name: str) -> str:
    return f"reminded {name}"

@durable.workflow
async def remind(ctx: durable.WorkflowContext, name: str) -> str:
    await ctx.sleep(30 * 86400)  # a month: skipped at once on the virtual clock
    return await send_reminder(name)

@pytest.mark.asyncio
@pytest.mark.parametrize("attempt", range(20))
async def test_reminder_after_a_month(attempt, durable_runtime, durable_clock, durable_crash):
    handle = await durable_runtime.start(remind, "ada")
    rt = await durable_crash()  # the process "dies" mid-run
    assert await rt.handle(handle.run_id).result(timeout=5) == "reminded ada"
"""


def test_the_readme_crash_example_passes_twenty_times_in_a_row(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It hung 8 times in 10: the recovered run parked while the write of its recovery
    # marker was still in flight, and the clock looked whether to skip only when a run
    # parked, never again once that write settled.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # this durable
    pytester.makepyfile(test_readme=README_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=20)
