"""Awaiting a run's end, for ``RunHandle.result``.

A run live here is awaited directly. Otherwise the journal holds the answer:
the run's row is read again each time the inbox hears of a change to that run.
The value is decoded from the journal and shaped by the workflow's return
annotation, as a step's result is.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from durable._base.aio import TaskSet
from durable._base.codec import convert, loads, return_hint
from durable.errors import WorkflowCancelled, WorkflowFailed
from durable.journal.info import RunStatus
from durable.journal.records import TERMINAL, RunRecord
from durable.workflow.decorators import registered
from durable.workflow.logs import log

if TYPE_CHECKING:
    from durable.runtime.runtime import Runtime


class Results:
    """The runtime's part that waits for runs to end."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._watching: set[tuple[str, str]] = set()
        self._tasks = TaskSet()

    def watch(self, run_id: str, watcher: str, message: str) -> None:
        """Nudge run ``watcher`` with ``message`` once run ``run_id`` has ended.

        For a run attached as a child by a run that is not its parent: the store
        tells only a run's own parent of its end. One watch per pair; the watcher
        asks again each time it parks (a replay, another runtime after a restart).
        """
        if (run_id, watcher) not in self._watching:
            self._watching.add((run_id, watcher))
            self._tasks.spawn(self._watch(run_id, watcher, message))

    async def _watch(self, run_id: str, watcher: str, message: str) -> None:
        rt = self.runtime
        try:
            while rt.is_open:
                changed = rt.inbox.next_change(run_id)
                try:
                    record = await rt.store.get_run(run_id)
                    if record is None or record.status in TERMINAL:
                        changed.cancel()
                        rt.residency.nudge(watcher, message)
                        return
                    await changed
                except Exception as error:  # closed, or the database away for a moment
                    changed.cancel()
                    if rt.is_open:
                        log.warning("durable: watching run %s for %s: %s", run_id, watcher, error)
                        await asyncio.sleep(rt.poll_interval)
        finally:
            self._watching.discard((run_id, watcher))

    async def wait(self, run_id: str) -> Any:
        """The run's output once it ends; ``WorkflowFailed`` or ``WorkflowCancelled``."""
        rt = self.runtime
        while True:
            live = rt.residency.live.get(run_id)
            if live is not None and not live.retired:
                # A virtual clock skips until it ends.
                with rt.awaiting(functools.partial(getattr, live, "ended")):
                    final = await live.wait_ended()
                if final is not None:
                    return outcome(final)
            # Not live here, or that incarnation was retired: ask the journal, await changes.
            changed = rt.inbox.next_change(run_id)
            record = await rt._record(run_id)
            if record.status in TERMINAL:
                changed.cancel()
                return outcome(record)
            with rt.awaiting(changed.done):
                await changed


def outcome(record: RunRecord) -> Any:
    """An ended run's output, or the exception its end is."""
    if record.status == RunStatus.CANCELLED:
        raise WorkflowCancelled(record.run_id)
    if record.status == RunStatus.FAILED:
        raise WorkflowFailed(record.run_id, loads(record.error or "{}"))
    wf = registered(record.workflow, record.version)
    hint = return_hint(wf.fn) if wf is not None else Any
    return convert(loads(record.output or "null"), hint)
