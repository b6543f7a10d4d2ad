"""What runs when: queue admission and cron ticks.

Admission takes queued runs of the queues this process declared, as far as
their limits allow, in one store transaction that every runtime's admission
to those queues is ordered with (``Store.admit``), and starts them here. It
runs when a slot may have been freed or a run queued: a run of a queue ends
here, the change feed brings news from elsewhere (NOTIFY on PostgreSQL), a
claim gave a dead runtime's runs back to their queues, a rate window opens.

Cron ticks are timers on the runtime's clock (a virtual clock skips through
them). A tick starts the run ``"<workflow>@<tick, ISO 8601>"``: every runtime
on the database may start it, and the run id makes all but the first a no-op.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from durable._base.aio import TaskSet
from durable.journal.records import Admitted, StoreUnavailable
from durable.workflow.decorators import Workflow, registry_keys
from durable.workflow.logs import log
from durable.workflow.queues import Cron, QueueStatus, ScheduleInfo, declared_queues

if TYPE_CHECKING:
    from durable.runtime.runtime import Runtime


class Scheduler:
    """The runtime's part that admits queued runs and starts scheduled ones."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._tasks = TaskSet()
        self._admitting = False
        self._again = False
        self._rate_timer: tuple[float, int] | None = None
        self._cron_timers: list[int] = []

    # -- queues --------------------------------------------------------------

    def admit_soon(self) -> None:
        """Admit what the queues allow, now; calls made meanwhile fold into one more."""
        rt = self.runtime
        if not rt.recover or not rt.is_open:
            return
        if self._admitting:
            self._again = True
            return
        self._admitting = True
        self._tasks.spawn(self._admit())

    async def _admit(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    more = await self._admit_once()
                except Exception as exc:  # the change feed or a timer brings the next try
                    self._failed(exc)
                    more = False
                if not (more or self._again) or not self.runtime.is_open:
                    return
        finally:
            self._admitting = False

    def hand_on_slot(self) -> bool:
        """A run of a queue is ending here: admit behind its end write, which the store
        commits with it where it can, so its slot passes to the next run in that commit.
        False if nothing was asked (the end then asks as any other news does)."""
        rt = self.runtime
        if not rt.recover or not rt.is_open:
            return False
        asked = self._ask()
        if asked is None:
            return False
        self._tasks.spawn(self._handed_on(*asked))
        return True

    async def _handed_on(self, admission: Awaitable[Admitted], room: int) -> None:
        try:
            more = await self._take(admission, room)
        except Exception as exc:
            self._failed(exc)
            more = True
        if more:
            self.admit_soon()

    def _failed(self, exc: Exception) -> None:
        log.warning("durable: admitting queued runs failed (%s); retrying", exc)
        if isinstance(exc, StoreUnavailable):
            # It may have committed with its answer lost (the connection broke as it did):
            # the runs it took are this runtime's and run nowhere; claim them.
            self.runtime.ownership.reclaim_later(None)

    async def _admit_once(self) -> bool:
        """One admission; True if it took as many as it had room for (there may be more)."""
        asked = self._ask()
        return asked is not None and await self._take(*asked)

    def _ask(self) -> tuple[Awaitable[Admitted], int] | None:
        """Ask the store to admit as many runs as this runtime has room for, now."""
        rt = self.runtime
        queues = declared_queues()
        room = rt.max_in_memory_runs - len(rt.residency.live)
        if not queues or room <= 0:
            return None
        wall = rt.ownership.wall_now()
        admission = rt.store.admit(
            rt.owner,
            wall + rt.lease_seconds,
            rt.clock.now(),
            queues,
            limit=room,
            workflows=rt.ownership.executes(),
        )
        return admission, room

    async def _take(self, admission: Awaitable[Admitted], room: int) -> bool:
        """Run what was admitted; True if it was as many as there was room for."""
        admitted = await admission
        if admitted.runs:
            await self.runtime.residency.resume(admitted.runs, fresh=admitted.fresh)
        if admitted.retry_at is not None:
            self._retry_at(admitted.retry_at)
        return len(admitted.runs) >= room

    def _retry_at(self, moment: float) -> None:
        """Admit again when a rate window lets the next run in."""
        timers = self.runtime.timers
        if self._rate_timer is not None:
            if self._rate_timer[0] <= moment:
                return
            timers.cancel(self._rate_timer[1])
        self._rate_timer = (moment, timers.call_at(moment, self._rate_window_opened))

    def _rate_window_opened(self) -> None:
        self._rate_timer = None
        self.admit_soon()

    async def status(self, name: str) -> QueueStatus:
        """A queue's counts, with its limits if this process declared it."""
        queued, running = await self.runtime.store.queue_counts(name)
        declared = {queue.name: queue for queue in declared_queues()}.get(name)
        if declared is None:
            return QueueStatus(name, queued, running, None, None, None)
        return QueueStatus(
            name, queued, running, declared.concurrency, declared.per_runtime, declared.rate
        )

    async def statuses(self) -> list[QueueStatus]:
        names = set(await self.runtime.store.queue_names())
        names.update(queue.name for queue in declared_queues())
        return [await self.status(name) for name in sorted(names)]

    # -- schedules -----------------------------------------------------------

    async def start_schedules(self) -> None:
        """Arm the schedules of the workflows this runtime executes; the latest tick
        missed since the schedule was first seen on the database runs now, once."""
        rt = self.runtime
        if not rt.recover:
            return
        now = self._now()
        for wf in self._scheduled():
            assert wf.cron is not None
            seen = await rt.store.see_schedule(
                wf.name, wf.cron.expression, wf.cron.tz, now.timestamp()
            )
            latest = wf.cron.latest_at(now)
            if latest.timestamp() >= seen.first_seen:
                await self._tick(wf, latest)
            self._arm(wf, wf.cron.next_after(now))

    def stop(self) -> None:
        for timer in self._cron_timers:
            self.runtime.timers.cancel(timer)
        self._cron_timers.clear()

    def _scheduled(self) -> list[Workflow[Any, Any]]:
        executes = self.runtime.ownership
        found = []
        for name, version in registry_keys():
            wf = executes.executable(name, version)
            if wf is not None and wf.cron is not None:
                found.append(wf)
        return found

    def _arm(self, wf: Workflow[Any, Any], tick: dt.datetime) -> None:
        fire = functools.partial(self._fire, wf, tick)
        self._cron_timers.append(self.runtime.timers.call_at(tick.timestamp(), fire))

    def _fire(self, wf: Workflow[Any, Any], tick: dt.datetime) -> None:
        if self.runtime.is_open:
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
        rt = self.runtime
        args = [tick] if wf.parameters() else []
        await rt.start_run(wf, args, {}, run_id=schedule_run_id(wf.name, tick))
        await rt.store.note_tick(wf.name, tick.timestamp())

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule on the journal, with its next tick (by the runtime's clock)."""
        now = self._now()
        found = []
        for record in await self.runtime.store.schedules():
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
        return dt.datetime.fromtimestamp(self.runtime.clock.now(), dt.UTC)


def schedule_run_id(workflow: str, tick: dt.datetime) -> str:
    """The run id of a schedule's tick: one run per tick, whoever starts it."""
    return f"{workflow}@{tick.isoformat()}"
