"""Changes written elsewhere reach the runs they concern, and who awaits news hears it.

``Changes`` holds the futures of those awaiting a change. ``FeedReader``, one task,
follows the store's change feed (``wait_for_change``: polling on
SQLite, LISTEN/NOTIFY on PostgreSQL): messages go to their runs, cancels stop
them, new or freed runs are claimed, and whoever awaits a change (a
``result()`` of a run running elsewhere) looks again. A change here to one run
(it ended here) wakes those waiting for any change and those waiting for that
run, not those waiting for others: a thousand results awaited of queued
runs are not all read again each time one of them ends. Between changes it
renews the runtime's lease when due.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from durable.journal.kinds import CANCEL, MESSAGE
from durable.journal.records import StoreUnavailable
from durable.store.ports import Store
from durable.workflow.logs import log

if TYPE_CHECKING:
    from durable.runtime.ownership import Ownership
    from durable.runtime.residency import Residency


class Changes:
    """The futures of those waiting for a change."""

    def __init__(self) -> None:
        self._waiting: set[asyncio.Future[None]] = set()
        self._waiting_for: dict[str, set[asyncio.Future[None]]] = {}

    def next_change(self, run_id: str | None = None) -> asyncio.Future[None]:
        """A future that resolves at the next change seen, or with ``run_id`` the next
        that may concern that run (it fails when the runtime closes)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if run_id is None:
            self._waiting.add(future)
        else:
            self._waiting_for.setdefault(run_id, set()).add(future)
        return future

    def notify(self, error: BaseException | None = None) -> None:
        """A change to any run, or to runs unknown (the feed): every waiter looks again."""
        waiting, self._waiting = self._waiting, set()
        for futures in self._waiting_for.values():
            waiting |= futures
        self._waiting_for = {}
        _wake(waiting, error)

    def notify_run(self, run_id: str, *, everyone: bool = True) -> None:
        """A change here to one run (it ended, or it started: not ``everyone``'s news)."""
        waiting = self._waiting_for.pop(run_id, set())
        if everyone:
            waiting |= self._waiting
            self._waiting = set()
        _wake(waiting, None)


class FeedReader:
    """The task that follows the store's change feed between lease renewals."""

    def __init__(
        self,
        store: Store,
        poll_interval: float,
        changes: Changes,
        ownership: Ownership,
        residency: Residency,
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.changes = changes
        self.ownership = ownership
        self.residency = residency
        self._last_seq = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, last_seq: int) -> None:
        """Follow the feed from ``last_seq``, read before the runtime's first claim."""
        self._last_seq = last_seq
        self._task = asyncio.create_task(self._follow(), name="durable-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _follow(self) -> None:
        ownership = self.ownership
        changed = False  # a change heard but not yet read (kept when reading it failed)
        while True:
            try:
                if not changed:
                    timeout = ownership.seconds_to_renewal()
                    changed = await self.store.wait_for_change(timeout)
                if changed:
                    await self._read_changes()
                changed = False
                await ownership.renew_if_due()
            except StoreUnavailable as exc:
                log.warning("durable poller: %s; retrying", exc)
                await asyncio.sleep(self.poll_interval)
            except Exception:
                log.exception("durable poller: reading the journal failed; retrying")
                await asyncio.sleep(self.poll_interval)

    async def _read_changes(self) -> None:
        for event in await self.store.changes_since(self._last_seq):
            self._last_seq = event.seq
            if event.kind == MESSAGE:
                self.residency.deliver(event)
            elif event.kind == CANCEL:
                self.residency.forget_cancelled(event.run_id)
        await self.ownership.claim(include_own=False)
        self.changes.notify()


def _wake(waiting: set[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in waiting:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
