"""Cron schedules: one run per tick over every runtime, on the runtime's clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import scoped_workflows

from .helpers import until

UTC = dt.UTC
DAY = 86_400.0


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.fixture
def daily() -> Iterator[durable.Workflow[Any, Any]]:
    """A workflow that runs every day at 09:00 UTC, declared for one test only."""
    with scoped_workflows():

        @durable.workflow(name="cron.daily", cron="0 9 * * *")
        async def report(ctx: durable.WorkflowContext, tick: dt.datetime) -> str:
            return tick.isoformat()

        yield report


async def scheduled_runs(rt: durable.Runtime, workflow: str) -> list[durable.RunInfo]:
    runs = [run for run in await rt.list_runs(workflow=workflow, limit=1000)]
    return sorted(runs, key=lambda run: run.run_id)


async def test_a_week_skipped_gives_seven_daily_runs(
    db: Path, daily: durable.Workflow[Any, Any]
) -> None:
    clock = durable.VirtualClock(at(2026, 3, 2, 10), auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        assert await scheduled_runs(rt, "cron.daily") == []  # today's 09:00 came before it
        clock.advance(7 * DAY)

        async def seven_done() -> list[durable.RunInfo] | None:
            runs = await scheduled_runs(rt, "cron.daily")
            done = [r for r in runs if r.status is durable.RunStatus.COMPLETED]
            return runs if len(done) == 7 else None

        runs = await until(seven_done)
        days = [f"2026-03-{day:02d}T09:00:00+00:00" for day in range(3, 10)]
        assert [run.run_id for run in runs] == [f"cron.daily@{day}" for day in days]
        assert [run.output for run in runs] == days  # each got its tick time
        last_tick = dt.datetime(2026, 3, 9, 9, tzinfo=UTC)

        async def last_tick_noted() -> durable.ScheduleInfo | None:
            # A tick is noted right after its run starts: that run may end first.
            (schedule,) = await rt.schedules()
            return schedule if schedule.last_tick == last_tick else None

        schedule = await until(last_tick_noted)
        assert (schedule.workflow, schedule.cron, schedule.tz) == ("cron.daily", "0 9 * * *", "UTC")
        assert schedule.next_tick == dt.datetime(2026, 3, 10, 9, tzinfo=UTC)


async def test_two_runtimes_at_the_same_tick_start_one_run(
    db: Path, daily: durable.Workflow[Any, Any]
) -> None:
    clock = durable.VirtualClock(at(2026, 3, 2, 8, 59), auto_skip=False)
    async with durable.Runtime(db, clock=clock) as one, durable.Runtime(db, clock=clock) as two:
        clock.advance(60)

        async def done() -> list[durable.RunInfo] | None:
            runs = await scheduled_runs(one, "cron.daily")
            return runs if runs and runs[0].status is durable.RunStatus.COMPLETED else None

        (run,) = await until(done)
        assert run.run_id == "cron.daily@2026-03-02T09:00:00+00:00"
        assert len(await scheduled_runs(two, "cron.daily")) == 1


async def test_only_the_latest_tick_missed_while_no_runtime_ran_is_caught_up(
    db: Path, daily: durable.Workflow[Any, Any]
) -> None:
    clock = durable.VirtualClock(at(2026, 3, 2, 10), auto_skip=False)
    async with durable.Runtime(db, clock=clock):
        pass  # the schedule is first seen now
    clock.advance(3 * DAY)
    async with durable.Runtime(db, clock=clock) as rt:
        run = await rt.handle("cron.daily@2026-03-05T09:00:00+00:00").result(timeout=10)
        assert run == "2026-03-05T09:00:00+00:00"
        assert len(await scheduled_runs(rt, "cron.daily")) == 1  # not the 3rd and 4th


async def test_a_daylight_saving_change_runs_each_day_once(db: Path) -> None:
    """Europe/Berlin, 02:30 every day: on 29 March 2026 02:30 does not exist (clocks go
    from 02:00 to 03:00), so that day's run is at 03:00; on 25 October 02:30 happens
    twice (03:00 back to 02:00), and runs once, at the first."""
    with scoped_workflows():

        @durable.workflow(name="cron.berlin", cron="30 2 * * *", tz="Europe/Berlin")
        async def nightly(ctx: durable.WorkflowContext, tick: dt.datetime) -> str:
            return tick.isoformat()

        for start, expected in [
            (
                at(2026, 3, 27, 12),
                [
                    "2026-03-28T02:30:00+01:00",
                    "2026-03-29T03:00:00+02:00",
                    "2026-03-30T02:30:00+02:00",
                ],
            ),
            (
                at(2026, 10, 23, 12),
                [
                    "2026-10-24T02:30:00+02:00",
                    "2026-10-25T02:30:00+02:00",
                    "2026-10-26T02:30:00+01:00",
                ],
            ),
        ]:
            clock = durable.VirtualClock(start, auto_skip=False)
            journal = f"{db}-{int(start)}" if isinstance(db, Path) else db
            async with durable.Runtime(journal, clock=clock) as rt:
                before = {run.run_id for run in await rt.list_runs(workflow="cron.berlin")}
                clock.advance(3 * DAY)

                async def three(before: set[str] = before) -> list[str] | None:
                    runs = await rt.list_runs(workflow="cron.berlin")
                    new = sorted(r.run_id for r in runs if r.run_id not in before)
                    finished = all(r.status is durable.RunStatus.COMPLETED for r in runs)
                    return new if len(new) == 3 and finished else None

                ticks = [run_id.partition("@")[2] for run_id in await until(three)]
                assert ticks == expected


def test_a_bad_cron_expression_or_time_zone_is_refused_at_decoration() -> None:
    with scoped_workflows():
        with pytest.raises(ValueError, match="its minute field is not valid"):

            @durable.workflow(name="cron.bad_minute", cron="61 * * * *")
            async def bad_minute(ctx: durable.WorkflowContext) -> None: ...

        with pytest.raises(ValueError, match="its hour field is not valid"):

            @durable.workflow(name="cron.bad_hour", cron="0 25 * * *")
            async def bad_hour(ctx: durable.WorkflowContext) -> None: ...

        with pytest.raises(ValueError, match="wrong number of fields"):

            @durable.workflow(name="cron.short", cron="* * *")
            async def short(ctx: durable.WorkflowContext) -> None: ...

        with pytest.raises(ValueError, match="unknown time zone tz='Mars/Olympus'"):

            @durable.workflow(name="cron.mars", cron="0 9 * * *", tz="Mars/Olympus")
            async def mars(ctx: durable.WorkflowContext) -> None: ...

        with pytest.raises(TypeError, match="may take one parameter"):

            @durable.workflow(name="cron.two", cron="0 9 * * *")
            async def two(ctx: durable.WorkflowContext, a: int, b: int) -> None: ...


async def test_a_scheduled_workflow_without_a_parameter_is_started_without_one(db: Path) -> None:
    with scoped_workflows():

        @durable.workflow(name="cron.bare", cron="*/5 * * * *")
        async def bare(ctx: durable.WorkflowContext) -> str:
            return "ran"

        clock = durable.VirtualClock(at(2026, 3, 2, 9, 1), auto_skip=False)
        async with durable.Runtime(db, clock=clock) as rt:
            clock.advance(4 * 60)
            run_id = "cron.bare@2026-03-02T09:05:00+00:00"

            async def started() -> bool:
                return bool(await rt.list_runs(workflow="cron.bare"))

            await until(started)
            assert await rt.handle(run_id).result(timeout=10) == "ran"


async def test_the_cli_lists_schedules_with_their_next_tick_and_last_run(
    db: Path, daily: durable.Workflow[Any, Any]
) -> None:
    import json

    from .processes import cli

    clock = durable.VirtualClock(at(2026, 3, 2, 8, 59), auto_skip=False)
    async with durable.Runtime(db, clock=clock) as rt:
        clock.advance(60)

        async def ran() -> bool:
            runs = await scheduled_runs(rt, "cron.daily")
            return bool(runs) and runs[0].status is durable.RunStatus.COMPLETED

        await until(ran)
    listed = cli(db, "schedules", "--json")
    assert listed.returncode == 0, listed.stderr
    (schedule,) = json.loads(listed.stdout)
    assert schedule["workflow"] == "cron.daily" and schedule["cron"] == "0 9 * * *"
    assert schedule["last_run_id"] == "cron.daily@2026-03-02T09:00:00+00:00"
    assert dt.datetime.fromisoformat(schedule["next_tick"]) > dt.datetime(2026, 3, 2, 9, tzinfo=UTC)
    text = cli(db, "schedules")
    assert "cron.daily" in text.stdout and "cron.daily@2026-03-02T09:00:00+00:00" in text.stdout
