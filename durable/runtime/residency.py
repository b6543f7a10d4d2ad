"""Which runs are in memory here: loaded (a live task) or unloaded until something wakes them.

Past ``max_in_memory_runs`` a run that parks is unloaded: only its timers and
the names of the events it awaits stay, and either wakes it (runs woken
together are claimed in one read). A claimed run whose journal shows it
parked is not started at all, for the same reason. With ``always_replay`` a
run is rebuilt from its journal at every park, to flush out non-determinism.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Collection
from typing import Any, Protocol

from durable._base.aio import TaskSet
from durable._base.clock import Clock, time_skipping
from durable._base.codec import encode
from durable.errors import CorruptJournal, RecoveryLimit
from durable.journal.info import STATUSES, unknown_status
from durable.journal.kinds import RECOVERED
from durable.journal.records import (
    EventRecord,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    claim_of,
)
from durable.journal.run_journal import RunJournal
from durable.runtime.changes import Changes
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.live_run import LiveRun
from durable.runtime.options import RuntimeOptions
from durable.runtime.supervision import Supervisor
from durable.runtime.timers import Timers
from durable.store.ports import Store
from durable.workflow.decorators import Workflow
from durable.workflow.logs import log


class Host(Supervisor, Protocol):
    """The supervisor of the live runs here, which also loads runs by claiming them."""

    async def reload(self, run_ids: list[str]) -> None:
        """Claim these runs (this runtime's own included) and start or park them."""


@dataclasses.dataclass
class _Unloaded:
    """An unloaded run: the timers and event names that wake it."""

    timers: list[int]
    messages: set[str]


class Residency:
    """The runs this runtime holds: ``loaded`` ones run here (a ``LiveRun`` each),
    ``unloaded`` ones wait for a timer or an event to wake them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        timers: Timers,
        options: RuntimeOptions,
        lifecycle: Lifecycle,
        changes: Changes,
        host: Host,
    ) -> None:
        self.store = store
        self.clock = clock
        self.skipping = time_skipping(clock)
        self.timers = timers
        self.options = options
        self.lifecycle = lifecycle
        self.changes = changes
        self.host = host
        self.loaded: dict[str, LiveRun] = {}
        self.unloaded: dict[str, _Unloaded] = {}
        self._waking: set[str] = set()
        self._reloading = 0
        """Reloads in flight: the runs they load are neither loaded nor unloaded yet."""
        self._tasks = TaskSet()

    def launch(self, record: RunRecord, wf: Workflow[Any, Any], journal: RunJournal) -> LiveRun:
        live = LiveRun(self.host, record, wf, journal)
        self.loaded[record.run_id] = live
        live.launch()
        self.changes.notify_run(record.run_id, everyone=False)  # result() waits here now
        return live

    def forget(self, live: LiveRun) -> None:
        """This incarnation no longer runs here."""
        if self.loaded.get(live.run_id) is live:
            del self.loaded[live.run_id]

    async def stop_all(self) -> None:
        """Stop every run where it is (nothing more is written) and forget them all."""
        runs = list(self.loaded.values())
        for live in runs:
            live.retire()
        await asyncio.gather(*(live.task for live in runs if live.task), return_exceptions=True)
        self.loaded.clear()
        self.unloaded.clear()

    async def resume(
        self,
        records: list[RunRecord],
        recovering: Collection[str] = (),
        fresh: Collection[str] = (),
    ) -> None:
        """Start claimed runs from their journals, or leave the parked ones unloaded.

        A run in ``recovering`` that was already recovered ``max_recoveries`` times
        in a row without progress is failed with ``RecoveryLimit`` instead: its
        process most likely dies each time it runs (a poison run). Runs in ``fresh``
        have no journal yet (a queue admitted them before they ever ran).
        """
        to_load = [record.run_id for record in records if record.run_id not in fresh]
        journals = await self.store.load_events(to_load) if to_load else {}
        for run_id in fresh:  # admitted before they ever ran: no journal to read
            journals.setdefault(run_id, [])
        now = self.clock.now()
        for record in records:
            wf = self.options.executable(record.workflow, record.version)
            if wf is None or record.run_id in self.loaded:  # started meanwhile, by a wake-up
                continue
            try:
                if record.status not in STATUSES:
                    raise unknown_status(record.run_id, record.status)
                journal = RunJournal(journals[record.run_id])
                if await self._leave_parked(record, journal, now):
                    continue
                if record.run_id not in recovering:
                    self.launch(record, wf, journal)
                elif journal.recoveries_in_a_row >= self.options.max_recoveries:
                    await self._give_up(record, journal.recoveries_in_a_row)
                else:
                    self._recover(record, wf, journal, now)
            except CorruptJournal as exc:  # fail that run alone; the others go on
                await self._fail_corrupt(record, exc)

    async def _leave_parked(self, record: RunRecord, journal: RunJournal, now: float) -> bool:
        """Leave a run unloaded if its journal shows it parked at a sleep or a wait: it
        would only replay to the same place. It stays unloaded until something wakes
        it, as an evicted run does. (A skipping clock looks only at live runs.)"""
        if self.options.always_replay or self.skipping.skips:
            return False
        if record.deadline is not None and record.deadline <= now:
            return False
        parked = journal.parked(now)
        if parked is None or record.run_id in self.unloaded:
            return False
        self._unload(record.run_id, [parked], record.deadline)
        status = "sleeping" if parked[1] is None else "waiting"
        if record.status != status:  # it crashed between parking and saying so
            update = RunUpdate(self.clock.now(), status=status)
            try:
                claim = claim_of(self.options.identity, record.epoch)
                await self.store.append(record.run_id, [], update, claim=claim)
            except (LeaseLost, RunEnded):  # taken over or cancelled meanwhile
                self.drop_unloaded(record.run_id)
        return True

    def _recover(
        self, record: RunRecord, wf: Workflow[Any, Any], journal: RunJournal, now: float
    ) -> None:
        """Start a run whose owner died, its recovery journaled with its first write."""
        live = self.launch(record, wf, journal)
        recovered = NewEvent(record.run_id, None, RECOVERED, "recovered", encode({}), now)
        self.store.append_nowait(record.run_id, [recovered], None, live.claim, live.writes)

    async def _fail_corrupt(self, record: RunRecord, error: CorruptJournal) -> None:
        """End a claimed run whose journal or row cannot be read, leaving its events as
        they are (``rt.resume`` once a person has corrected them)."""
        log.error("%s", error)
        await self._fail(record, error.to_record())

    async def _give_up(self, record: RunRecord, recoveries: int) -> None:
        error = RecoveryLimit(
            f"run {record.run_id!r} was recovered {recoveries} times in a row without"
            " progress: its process most likely died each time it ran (a step that crashes"
            " or exhausts memory). Fix the cause, then rt.resume() it (or `durable resume`)"
        )
        log.error("%s", error)
        await self._fail(record, error.to_record())

    async def _fail(self, record: RunRecord, error: dict[str, Any]) -> None:
        update = RunUpdate(self.clock.now(), status="failed", error=encode(error))
        claim = claim_of(self.options.identity, record.epoch)
        with contextlib.suppress(LeaseLost, RunEnded):  # taken over or ended meanwhile
            await self.store.append(record.run_id, [], update, claim=claim)
        self.changes.notify_run(record.run_id)  # result() waiters here look again

    def deliver(self, message: EventRecord) -> None:
        live = self.loaded.get(message.run_id)
        if live is not None:
            live.deliver(message)
        unloaded = self.unloaded.get(message.run_id)
        if unloaded is not None and message.name in unloaded.messages:
            self._wake(message.run_id)

    def forget_cancelled(self, run_id: str, error: str | None = None) -> None:
        """The journal says the run was cancelled (or failed with ``error``): stop it."""
        live = self.loaded.get(run_id)
        if live is not None:
            live.cancel(error)
        self.drop_unloaded(run_id)

    def nudge(self, run_id: str, message: str) -> None:
        """Wake the run's waits for ``message`` as if it had arrived: they look again at
        what they wait for (a child's row), without the message in their inbox."""
        live = self.loaded.get(run_id)
        if live is not None:
            live.nudge(message)
        unloaded = self.unloaded.get(run_id)
        if unloaded is not None and message in unloaded.messages:
            self._wake(run_id)

    def drop_unloaded(self, run_id: str) -> bool:
        """Forget an unloaded run and cancel its timers; False if it was not unloaded."""
        unloaded = self.unloaded.pop(run_id, None)
        if unloaded is None:
            return False
        for timer in unloaded.timers:
            self.timers.cancel(timer)
        return True

    def note_suspended(self, live: LiveRun) -> None:
        """A run parked: maybe rebuild it (always_replay), maybe skip virtual time."""
        loop = asyncio.get_running_loop()
        if self.options.always_replay:
            loop.call_soon(self._rebuild_if_idle, live)
        elif len(self.loaded) > self.options.max_in_memory_runs:
            loop.call_soon(self._evict_if_idle, live)
        self.skipping.poke()

    def parked(self) -> bool:
        """Every run here waits (for time or news) and none is being loaded: for a
        virtual clock, which skips only then."""
        runs = self.loaded.values()
        return not self._waking and not self._reloading and all(run.idle for run in runs)

    def _rebuild_if_idle(self, live: LiveRun) -> None:
        position = live.positions_used
        if self.loaded.get(live.run_id) is live and live.idle and position not in live.replayed_at:
            live.retire()
            self._tasks.spawn(self._rebuild(live, live.replayed_at | {position}))

    def _evict_if_idle(self, live: LiveRun) -> None:
        """Unload an idle run; its timers and awaited events stay here to wake it."""
        if self.loaded.get(live.run_id) is not live or not live.idle:
            return
        waits = live.parked_waits()
        live.retire()
        del self.loaded[live.run_id]
        self._unload(live.run_id, waits, live.record.deadline)

    def _unload(
        self,
        run_id: str,
        waits: list[tuple[float | None, str | None]],
        run_deadline: float | None,
    ) -> None:
        """Keep only what wakes the run: a timer per deadline (its waits' and its own),
        the names of awaited events."""
        deadlines = [deadline for deadline, _ in waits] + [run_deadline]
        timers = [
            self.timers.call_at(deadline, functools.partial(self._wake, run_id))
            for deadline in deadlines
            if deadline is not None
        ]
        messages = {message for _, message in waits if message is not None}
        self.unloaded[run_id] = _Unloaded(timers, messages)

    def _wake(self, run_id: str) -> None:
        """Load an unloaded run again; runs woken together are loaded in bulk."""
        if not self.drop_unloaded(run_id):
            return
        if not self._waking:
            self._tasks.spawn(self._load_woken())
        self._waking.add(run_id)

    async def _load_woken(self) -> None:
        await asyncio.sleep(0)  # let the other runs woken in this moment join
        run_ids, self._waking = sorted(self._waking), set()
        if self.lifecycle.is_open:
            await self._reload(run_ids)

    async def _reload(self, run_ids: list[str]) -> None:
        """Load runs again; a virtual clock does not skip time meanwhile."""
        self._reloading += 1
        try:
            await self.host.reload(run_ids)
        finally:
            self._reloading -= 1
        self.skipping.poke()

    async def _rebuild(self, old: LiveRun, replayed_at: set[int]) -> None:
        """Replace a retired run by a new incarnation replayed from the stored journal."""
        if old.task is not None:
            await asyncio.gather(old.task, return_exceptions=True)
        if not self.lifecycle.is_open or self.loaded.get(old.run_id) is not old:
            return
        self.host.run_ended(old)
        await self._reload([old.run_id])  # counted as reloading before it yields
        new = self.loaded.get(old.run_id)
        if new is not None:
            new.replayed_at = replayed_at
