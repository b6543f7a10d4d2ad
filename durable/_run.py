"""``LiveRun``: one run being executed by this process.

It drives the workflow coroutine, writes the run's journal through the
store, and parks the run on the runtime's timers and inbox while it sleeps
or waits. Cancellation and runtime shutdown both cancel the run's task: a
cancelled run is marked in the journal first, a shut-down run is left as it
is so that the next runtime resumes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from . import _current
from ._codec import convert, encode, loads, parameter_hints
from ._context import WorkflowContext
from ._journal import RunJournal, family
from ._store.base import EventRecord, NewEvent, RunRecord, RunUpdate
from ._workflow import Workflow
from .errors import DurableError, NonDeterminismError

if TYPE_CHECKING:
    from ._runtime import Runtime

log = logging.getLogger("durable")


class LiveRun:
    """The in-process state of one run: its journal, its task, what it waits for."""

    def __init__(
        self,
        runtime: Runtime,
        record: RunRecord,
        workflow: Workflow[Any, Any],
        events: list[EventRecord],
    ) -> None:
        self.runtime = runtime
        self.clock = runtime.clock
        self.record = record
        self.run_id = record.run_id
        self.workflow = workflow
        self.workflow_name = workflow.name
        self.journal = RunJournal(events)
        self.status = record.status
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.suspended = False
        self.deadline: float | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_for: str | None = None
        self._nondeterminism: NonDeterminismError | None = None
        self._write_error: BaseException | None = None

    def launch(self) -> None:
        self.task = asyncio.create_task(self._drive(), name=f"durable-run:{self.run_id}")

    # -- RunHost -------------------------------------------------------------

    async def append(self, position: int, kind: str, name: str, payload: str) -> EventRecord:
        now = self.clock.now()
        (seq,) = await self.runtime.store.append(
            self.run_id, [NewEvent(self.run_id, position, kind, name, payload, now)]
        )
        event = EventRecord(seq, self.run_id, position, kind, name, payload, now)
        self.journal.record(event)
        return event

    def append_nowait(self, position: int, kind: str, name: str, payload: str) -> None:
        now = self.clock.now()
        write = self.runtime.store.append(
            self.run_id, [NewEvent(self.run_id, position, kind, name, payload, now)]
        )
        self.journal.record(EventRecord(0, self.run_id, position, kind, name, payload, now))
        asyncio.ensure_future(write).add_done_callback(self._note_write)

    def _note_write(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._write_error = future.exception()

    async def suspend(self, status: str, deadline: float | None, message: str | None) -> None:
        self.check_running()
        if message is not None and self.journal.has_message(message):
            return
        # Register the waiter before any await, so a wake-up cannot slip in unseen.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._waiting_for = message
        self.deadline = deadline
        timer = None if deadline is None else self.runtime.timers.call_at(deadline, self.wake)
        try:
            await self._set_status(status)
            if not waiter.done():
                self.suspended = True
                self.runtime.note_suspended()
            await waiter
        finally:
            self.suspended = False
            self._waiter = None
            self._waiting_for = None
            if timer is not None:
                self.runtime.timers.cancel(timer)
        self.check_running()
        await self._set_status("running")

    def check_running(self) -> None:
        if self.cancel_requested:
            raise asyncio.CancelledError()
        if self._nondeterminism is not None:
            raise self._nondeterminism
        if self._write_error is not None:
            raise DurableError(
                f"a journal write of run {self.run_id!r} failed: {self._write_error}"
            )

    def nondeterministic(self, error: NonDeterminismError) -> None:
        self._nondeterminism = error

    # -- driven by the runtime ------------------------------------------------

    def wake(self) -> None:
        """Resume the run if it is parked (timer fired, message arrived)."""
        if self._waiter is not None and not self._waiter.done():
            self.suspended = False
            self._waiter.set_result(None)

    def deliver(self, message: EventRecord) -> None:
        if self.journal.deliver(message) and self._waiting_for == message.name:
            self.wake()

    def cancel(self) -> None:
        """Stop the run at its current await; the journal already says cancelled."""
        self.cancel_requested = True
        if self.task is not None:
            self.task.cancel()

    async def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            await self.runtime.store.append(
                self.run_id, [], RunUpdate(self.clock.now(), status=status)
            )

    async def _drive(self) -> None:
        ctx = WorkflowContext(self)
        _current.context.set(ctx)
        try:
            await self._set_status("running")
            args, kwargs = self._decode_input()
            result = await self.workflow.fn(ctx, *args, **kwargs)
            self.check_running()
            self._check_fully_replayed(ctx)
            output = encode(result)
        except asyncio.CancelledError:
            if self.cancel_requested:
                self.runtime.run_ended(self)
            return
        except Exception as exc:
            error = self._nondeterminism or exc
            record = error.to_record() if isinstance(error, DurableError) else _unhandled(error)
            if isinstance(error, NonDeterminismError):
                record |= {
                    "position": error.position,
                    "expected": error.expected,
                    "received": error.received,
                }
            if not isinstance(error, DurableError):
                log.warning("run %s of %s failed", self.run_id, self.workflow_name, exc_info=error)
            await self._finish(RunUpdate(self.clock.now(), status="failed", error=encode(record)))
            return
        await self._finish(RunUpdate(self.clock.now(), status="completed", output=output))

    async def _finish(self, update: RunUpdate) -> None:
        try:
            await self.runtime.store.append(self.run_id, [], update)
        except Exception:
            log.exception("could not record the end of run %s; it will be resumed", self.run_id)
        self.runtime.run_ended(self)

    def _decode_input(self) -> tuple[list[Any], dict[str, Any]]:
        data = loads(self.record.input)
        hints = parameter_hints(self.workflow.fn)
        names = list(inspect.signature(self.workflow.fn).parameters)[1:]
        args = [
            convert(value, hints.get(names[i], Any)) if i < len(names) else value
            for i, value in enumerate(data.get("args", []))
        ]
        kwargs = {
            key: convert(value, hints.get(key, Any))
            for key, value in data.get("kwargs", {}).items()
        }
        return args, kwargs

    def _check_fully_replayed(self, ctx: WorkflowContext) -> None:
        used = ctx._positions_used()
        leftover = sorted(position for position in self.journal.live if position >= used)
        if leftover:
            first = self.journal.live[leftover[0]][0]
            error = NonDeterminismError(
                leftover[0], f"{family(first.kind)} {first.name!r}", "the workflow returning"
            )
            self._nondeterminism = error
            raise error


def _unhandled(error: BaseException) -> dict[str, Any]:
    return {"code": "UNHANDLED_EXCEPTION", "type": type(error).__name__, "message": str(error)}
