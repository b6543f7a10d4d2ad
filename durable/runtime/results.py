"""Awaiting a run's end, for ``RunHandle.result``.

A run live here is awaited directly. Otherwise the journal holds the answer: a
``watch`` of the run reads its row again after each change that may concern it.
The value is decoded from the journal and shaped by the workflow's return
annotation, as a step's result is.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import aclosing
from typing import Any

from durable._base.aio import TaskSet
from durable._base.clock import awaiting
from durable._base.codec import convert, loads, return_hint
from durable.errors import RunNotFound, WorkflowCancelled, WorkflowFailed
from durable.journal.info import RunInfo, RunStatus
from durable.journal.records import RunRecord
from durable.runtime.live_run import LiveRun
from durable.runtime.options import RuntimeOptions
from durable.runtime.reading import Reading
from durable.runtime.residency import Residency
from durable.runtime.watch import in_time
from durable.workflow.decorators import registered
from durable.workflow.logs import log


class Results:
    """The runtime's part that waits for runs to end."""

    def __init__(self, reading: Reading, residency: Residency, options: RuntimeOptions) -> None:
        self.reading = reading
        self.residency = residency
        self.options = options
        self._watching: set[tuple[str, str]] = set()
        self._tasks = TaskSet()

    def nudge_at_end(self, run_id: str, watcher: str, message: str) -> None:
        """Nudge run ``watcher`` with ``message`` once run ``run_id`` has ended.

        For a run attached as a child by a run that is not its parent: the store
        tells only a run's own parent of its end. One watch per pair; the watcher
        asks again each time it parks (a replay, another runtime after a restart).
        """
        if (run_id, watcher) not in self._watching:
            self._watching.add((run_id, watcher))
            self._tasks.spawn(self._nudge_at_end(run_id, watcher, message))

    async def _nudge_at_end(self, run_id: str, watcher: str, message: str) -> None:
        lifecycle = self.reading.lifecycle
        try:
            while lifecycle.is_open:
                try:
                    looks = self.reading.watch(run_id, "none", caller=False)
                    async with aclosing(looks):
                        async for _ in looks:
                            pass  # until its end
                except RunNotFound:
                    pass
                except Exception as error:  # closed, or the database away for a moment
                    if lifecycle.is_open:
                        log.warning("durable: watching run %s for %s: %s", run_id, watcher, error)
                        await asyncio.sleep(self.options.poll_interval)
                    continue
                self.residency.nudge(watcher, message)
                return
        finally:
            self._watching.discard((run_id, watcher))

    async def wait(self, run_id: str, timeout: float | None) -> Any:
        """The run's output once it ends; ``WorkflowFailed`` or ``WorkflowCancelled``;
        after ``timeout`` real seconds a ``TimeoutError`` naming the run and its status."""

        async def late() -> str:
            status = str(RunInfo.from_record(await self.reading.record(run_id)).status)
            return (
                f"run {run_id!r} did not end within {timeout} s; it is {status} and goes"
                " on (await result() again, or cancel it)"
            )

        return await in_time(self._ended(run_id), timeout, late)

    async def _ended(self, run_id: str) -> Any:
        while True:
            live = self._live(run_id)
            if live is not None:
                with awaiting(self.reading.clock, functools.partial(getattr, live, "ended")):
                    final = await live.wait_ended()
                if final is not None:
                    return outcome(final)
            # Not live here, or that incarnation was retired: ask the journal.
            final = await self._journaled_end(run_id)
            if final is not None:
                return outcome(final)

    async def _journaled_end(self, run_id: str) -> RunRecord | None:
        """The run's record once it has ended; None as soon as it is live here."""
        async with aclosing(self.reading.watch(run_id, "none")) as looks:
            async for news in looks:
                if not news.ended and self._live(run_id) is not None:
                    return None
        return news.record  # a watch's last look is the run's end

    def _live(self, run_id: str) -> LiveRun | None:
        live = self.residency.loaded.get(run_id)
        return None if live is None or live.retired else live


def outcome(record: RunRecord) -> Any:
    """An ended run's output, or the exception its end is."""
    if record.status == RunStatus.CANCELLED:
        raise WorkflowCancelled(record.run_id)
    if record.status == RunStatus.FAILED:
        raise WorkflowFailed(record.run_id, loads(record.error or "{}"))
    wf = registered(record.workflow, record.version)
    hint = return_hint(wf.fn) if wf is not None else Any
    return convert(loads(record.output or "null"), hint)
