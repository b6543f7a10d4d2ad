"""Changes written elsewhere reach the runs they concern.

One task follows the store's change feed (``wait_for_change``: polling on
SQLite, LISTEN/NOTIFY on PostgreSQL): messages go to their runs, cancels stop
them, new or freed runs are claimed, and whoever awaits a change (a
``result()`` of a run running elsewhere) looks again. Between changes it
renews the runtime's lease when due.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ._journal import CANCEL, MESSAGE
from ._logs import log
from ._store.base import StoreUnavailable

if TYPE_CHECKING:
    from ._runtime import Runtime


class Inbox:
    """The change-feed reader, and the futures of those waiting for a change."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._last_seq = 0
        self._task: asyncio.Task[None] | None = None
        self._waiting: set[asyncio.Future[None]] = set()

    async def start(self, last_seq: int) -> None:
        """Follow the feed from ``last_seq``, read before the runtime's first claim."""
        self._last_seq = last_seq
        self._task = asyncio.create_task(self._follow(), name="durable-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def next_change(self) -> asyncio.Future[None]:
        """A future that resolves at the next change seen (or fails when the runtime closes)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.add(future)
        return future

    def notify(self, error: BaseException | None = None) -> None:
        waiting, self._waiting = self._waiting, set()
        for future in waiting:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def _follow(self) -> None:
        ownership = self.runtime.ownership
        changed = False  # a change heard but not yet read (kept when reading it failed)
        while True:
            try:
                if not changed:
                    timeout = ownership.seconds_to_renewal()
                    changed = await self.runtime.store.wait_for_change(timeout)
                if changed:
                    await self._read_changes()
                changed = False
                await ownership.renew_if_due()
            except StoreUnavailable as exc:
                log.warning("durable poller: %s; retrying", exc)
                await asyncio.sleep(self.runtime.poll_interval)
            except Exception:
                log.exception("durable poller: reading the journal failed; retrying")
                await asyncio.sleep(self.runtime.poll_interval)

    async def _read_changes(self) -> None:
        rt = self.runtime
        for event in await rt.store.changes_since(self._last_seq):
            self._last_seq = event.seq
            if event.kind == MESSAGE:
                rt.residency.deliver(event)
            elif event.kind == CANCEL:
                rt.residency.forget_cancelled(event.run_id)
        await rt.ownership.claim(include_own=False)
        self.notify()
