"""Queue admission: which queued runs start, and when.

Admission takes queued runs of the queues this process declared, as far as
their limits allow, in one store transaction that every runtime's admission
to those queues is ordered with (``Store.admit``), and starts them here. It
runs when a slot may have been freed or a run queued: a run of a queue ends
here, the change feed brings news from elsewhere (NOTIFY on PostgreSQL), a
claim gave a dead runtime's runs back to their queues, a rate window opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from durable._base.aio import TaskSet
from durable._base.clock import Clock, SystemClock
from durable.journal.records import Admitted, StoreUnavailable
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.options import RuntimeOptions
from durable.runtime.residency import Residency
from durable.runtime.timers import Timers
from durable.store.ports import Store
from durable.workflow.logs import log
from durable.workflow.queues import QueueStatus, declared_queues


class Admission:
    """The runtime's part that admits queued runs."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        timers: Timers,
        options: RuntimeOptions,
        lifecycle: Lifecycle,
        residency: Residency,
        reclaim: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.timers = timers
        self.options = options
        self.lifecycle = lifecycle
        self.residency = residency
        self.reclaim = reclaim
        """Claim this runtime's runs that run nowhere (``Ownership.reclaim_later``)."""
        self._wall = SystemClock()  # leases run on the wall clock
        self._tasks = TaskSet()
        self._admitting = False
        self._again = False
        self._rate_timer: tuple[float, int] | None = None

    def admit_soon(self) -> None:
        """Admit what the queues allow, now; calls made meanwhile fold into one more."""
        if not self.options.recover or not self.lifecycle.is_open:
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
                if not (more or self._again) or not self.lifecycle.is_open:
                    return
        finally:
            self._admitting = False

    def hand_on_slot(self) -> bool:
        """A run of a queue is ending here: admit behind its end write, which the store
        commits with it where it can, so its slot passes to the next run in that commit.
        False if nothing was asked (the end then asks as any other news does)."""
        if not self.options.recover or not self.lifecycle.is_open:
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
            self.reclaim()

    async def _admit_once(self) -> bool:
        """One admission; True if it took as many as it had room for (there may be more)."""
        asked = self._ask()
        return asked is not None and await self._take(*asked)

    def _ask(self) -> tuple[Awaitable[Admitted], int] | None:
        """Ask the store to admit as many runs as this runtime has room for, now."""
        options = self.options
        queues = declared_queues()
        room = options.max_in_memory_runs - len(self.residency.loaded)
        if not queues or room <= 0:
            return None
        admission = self.store.admit(
            options.identity,
            self._wall.now() + options.lease_seconds,
            self.clock.now(),
            queues,
            limit=room,
            workflows=options.executes(),
        )
        return admission, room

    async def _take(self, admission: Awaitable[Admitted], room: int) -> bool:
        """Run what was admitted; True if it was as many as there was room for."""
        admitted = await admission
        if admitted.runs:
            await self.residency.resume(admitted.runs, fresh=admitted.fresh)
        if admitted.retry_at is not None:
            self._retry_at(admitted.retry_at)
        return len(admitted.runs) >= room

    def _retry_at(self, moment: float) -> None:
        """Admit again when a rate window lets the next run in."""
        timers = self.timers
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
        queued, running = await self.store.queue_counts(name)
        declared = {queue.name: queue for queue in declared_queues()}.get(name)
        if declared is None:
            return QueueStatus(name, queued, running, None, None, None)
        return QueueStatus(
            name, queued, running, declared.concurrency, declared.per_runtime, declared.rate
        )

    async def statuses(self) -> list[QueueStatus]:
        names = set(await self.store.queue_names())
        names.update(queue.name for queue in declared_queues())
        return [await self.status(name) for name in sorted(names)]
