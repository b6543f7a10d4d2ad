"""Cron schedules: the run of each tick, started at its time.

Ticks are timers on the runtime's clock (a virtual clock skips through
them). A tick starts the run ``"<workflow>@<tick, ISO 8601>"``: every runtime
on the database may start it, and the run id makes all but the first a no-op.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from durable._base.aio import TaskSet
from durable._base.clock import Clock
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.options import RuntimeOptions
from durable.runtime.starting import Starter
from durable.runtime.timers import Timers
from durable.store.ports import Store
from durable.workflow.decorators import Workflow, registry_keys
from durable.workflow.logs import log
from durable.workflow.queues import Cron, ScheduleInfo


class Schedules:
    """The runtime's part that starts the runs of cron schedules at their ticks."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        timers: Timers,
        options: RuntimeOptions,
        lifecycle: Lifecycle,
        starter: Starter,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timers = timers
        self.options = options
        self.lifecycle = lifecycle
        self.starter = starter
        self._tasks = TaskSet()
        self._cron_timers: list[int] = []

    async def start(self) -> None:
        """Arm the schedules of the workflows this runtime executes; the latest tick
        missed since the schedule was first seen on the database runs now, once."""
        if not self.options.recover:
            return
        now = self._now()
        for wf in self._scheduled():
            assert wf.cron is not None
            seen = await self.store.see_schedule(
                wf.name, wf.cron.expression, wf.cron.tz, now.timestamp()
            )
            latest = wf.cron.latest_at(now)
            if latest.timestamp() >= seen.first_seen:
                await self._tick(wf, latest)
            self._arm(wf, wf.cron.next_after(now))

    def stop(self) -> None:
        for timer in self._cron_timers:
            self.timers.cancel(timer)
        self._cron_timers.clear()

    def _scheduled(self) -> list[Workflow[Any, Any]]:
        found = []
        for name, version in registry_keys():
            wf = self.options.executable(name, version)
            if wf is not None and wf.cron is not None:
                found.append(wf)
        return found

    def _arm(self, wf: Workflow[Any, Any], tick: dt.datetime) -> None:
        fire = functools.partial(self._fire, wf, tick)
        self._cron_timers.append(self.timers.call_at(tick.timestamp(), fire))

    def _fire(self, wf: Workflow[Any, Any], tick: dt.datetime) -> None:
        if self.lifecycle.is_open:
            self._tasks.spawn(self._fire_tick(wf, tick))

    async def _fire_tick(self, wf: Workflow[Any, Any], tick: dt.datetime) -> None:
        assert wf.cron is not None
        try:
            await self._tick(wf, tick)
        except Exception:
            log.exception("durable: starting the %s run of %s failed", tick.isoformat(), wf.name)
        # The next tick after this one, not after now: a clock that jumped a week (a
        # virtual one) gets a run for each tick it passed while the runtime was open.
        self._arm(wf, wf.cron.next_after(tick))

    async def _tick(self, wf: Workflow[Any, Any], tick: dt.datetime) -> None:
        args = [tick] if wf.parameters() else []
        await self.starter.start(wf, args, {}, run_id=schedule_run_id(wf.name, tick))
        await self.store.note_tick(wf.name, tick.timestamp())

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule on the journal, with its next tick (by the runtime's clock)."""
        now = self._now()
        found = []
        for record in await self.store.schedules():
            # The journal's copy: a tool that imported no workflow reads it the same.
            cron = Cron(record.cron, record.tz)
            last = record.last_tick
            found.append(
                ScheduleInfo(
                    record.workflow,
                    cron.expression,
                    cron.tz,
                    cron.next_after(now),
                    None if last is None else dt.datetime.fromtimestamp(last, cron.zone),
                )
            )
        return found

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)


def schedule_run_id(workflow: str, tick: dt.datetime) -> str:
    """The run id of a schedule's tick: one run per tick, whoever starts it."""
    return f"{workflow}@{tick.isoformat()}"
