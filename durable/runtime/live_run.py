"""``LiveRun``: one run being executed by this process.

It drives the workflow coroutine, writes the run's journal through the
store, and parks the run on the runtime's timers while it sleeps or waits.
It knows the runtime only as a ``Supervisor``. Cancellation and runtime
shutdown both cancel the run's task: a cancelled run is marked in the journal
first, a shut-down run is left as it is so that the next runtime resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Awaitable, Sequence
from typing import Any

from durable._base.codec import encode
from durable.errors import CorruptJournal, DurableError, NonDeterminismError
from durable.journal.info import RunStatus
from durable.journal.kinds import PUBLISHED, STREAM_VALUE, STREAM_VOIDED
from durable.journal.records import (
    EventRecord,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    StoreUnavailable,
    claim_of,
)
from durable.journal.run_journal import RunJournal, unreplayed
from durable.journal.streams import voided
from durable.runtime.run_budget import RunBudget
from durable.runtime.supervision import Supervisor
from durable.store.ports import WriteChain
from durable.workflow import current as _current
from durable.workflow.context import WorkflowContext
from durable.workflow.decorators import Workflow
from durable.workflow.logs import log


class LiveRun:
    """The in-process state of one run: its journal, its task, what it waits for."""

    def __init__(
        self,
        supervisor: Supervisor,
        record: RunRecord,
        workflow: Workflow[Any, Any],
        journal: RunJournal,
    ) -> None:
        self.supervisor = supervisor
        self.store = supervisor.store
        self.clock = supervisor.clock
        self.max_value_bytes = supervisor.options.max_value_bytes
        self.telemetry = supervisor.telemetry
        self.record = record
        self.claim = claim_of(supervisor.options.identity, record.epoch)
        """What each write of this copy carries: refused once the run is claimed again."""
        self.run_id = record.run_id
        self.workflow = workflow
        self.workflow_name = workflow.name
        self.journal = journal
        self.status = record.status
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.retired = False
        self.ended = False
        self._ended_event: asyncio.Event | None = None  # made when someone waits early
        self.final: RunRecord | None = None
        self.replayed_at: set[int] = set()
        self.ctx: WorkflowContext | None = None
        self._parked: set[_Parked] = set()
        self._nudged: set[str] = set()  # nudges no wait was parked for yet
        self._busy = 0
        self._suspending = 0
        self._fatal: NonDeterminismError | CorruptJournal | None = None
        self.writes = WriteChain()  # every write of this incarnation, in order
        self._end_write: tuple[Awaitable[list[int]], RunUpdate] | None = None
        self.stopped_as: tuple[str, str | None] = (RunStatus.CANCELLED.value, None)
        """How the run ends when it is stopped from outside: cancelled, or failed with
        this error (its deadline passed)."""
        self._deadline_timer: int | None = None
        self.unhandled: BaseException | None = None
        """The exception the workflow raised and did not handle, when that failed it."""
        self.budget = RunBudget(self)
        self.slot_handed_on = False
        """Whether an admission to its queue rides behind its end write."""

    # -- RunHost -------------------------------------------------------------

    async def append(self, position: int, kind: str, name: str, payload: str) -> EventRecord:
        now, new, update = self._event(position, kind, name, payload)
        seqs = await self._written(self._store_write([new], update))
        if kind.startswith(PUBLISHED):
            self.supervisor.published()  # readers here (rt.read_stream) look at once
        event = EventRecord(seqs[0], self.run_id, position, kind, name, payload, now)
        self.journal.record(event)
        return event

    def append_nowait(self, position: int, kind: str, name: str, payload: str) -> None:
        _, new, update = self._event(position, kind, name, payload)
        self.store.append_nowait(self.run_id, [new], update, self.claim, self.writes)

    def publish(self, position: int, kind: str, name: str, payload: str) -> None:
        _, new, update = self._event(position, kind, name, payload)
        written = self.store.append(self.run_id, [new], update, claim=self.claim, chain=self.writes)
        if isinstance(written, asyncio.Future):
            written.add_done_callback(self._published)

    def _published(self, written: asyncio.Future[list[int]]) -> None:
        if not written.cancelled() and written.exception() is None:
            self.supervisor.published()  # for rt.wait_state here; others hear of the commit

    async def start_child(
        self,
        wf: Workflow[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        run_id: str,
    ) -> None:
        await self.supervisor.start_child(wf, args, kwargs, run_id, self.run_id)

    def emit(self, values: Sequence[tuple[str, str, float]]) -> asyncio.Future[Any]:
        if self.retired:
            raise asyncio.CancelledError()
        written = self.unpositioned(STREAM_VALUE, values)
        written.add_done_callback(self._published)  # readers here look at once
        return written

    def void(self, position: int, attempt: int) -> None:
        if self.retired or self.cancel_requested:
            return  # the run's cancel voids them, or the copy that runs it next re-runs the step
        where = voided(position, attempt)
        voiding = self.unpositioned(STREAM_VOIDED, [("cancelled", where, self.clock.now())])
        voiding.add_done_callback(self._published)

    def unpositioned(
        self, kind: str, items: Sequence[tuple[str, str, float]]
    ) -> asyncio.Future[list[int]]:
        """Write events without a position that a step body made (stream values, a void,
        spend), each ``(name, payload, moment)``, in the run's write chain; not awaited."""
        events = [NewEvent(self.run_id, None, kind, name, text, at) for name, text, at in items]
        write = self.store.append(self.run_id, events, None, claim=self.claim, chain=self.writes)
        return asyncio.ensure_future(write)  # both stores answer with a future already

    async def _written(self, write: Awaitable[list[int]]) -> list[int]:
        """The write's seqs; a refused or lost write stops the run here (CancelledError)."""
        try:
            return await write
        except (LeaseLost, RunEnded) as error:
            self._not_ours(error)
            raise asyncio.CancelledError() from None
        except StoreUnavailable as error:
            self._let_go(error)
            raise asyncio.CancelledError() from None

    async def read_run(self, run_id: str) -> RunRecord | None:
        return await self.store.get_run(run_id)

    def watch_end(self, run_id: str, message: str) -> None:
        self.supervisor.watch_end(run_id, self.run_id, message)

    async def send(self, run_id: str, name: str, payload: str, key: str) -> None:
        await self.supervisor.send(run_id, name, payload, key)

    def _event(
        self, position: int, kind: str, name: str, payload: str
    ) -> tuple[float, NewEvent, RunUpdate | None]:
        """One event to write; a run not marked running yet is marked in the same commit."""
        if self.retired:
            raise asyncio.CancelledError()
        now = self.clock.now()
        update = None
        if self.status != RunStatus.RUNNING:
            self.status = RunStatus.RUNNING.value
            update = RunUpdate(now, status=self.status)
        return now, NewEvent(self.run_id, position, kind, name, payload, now), update

    def _store_write(
        self, events: list[NewEvent], update: RunUpdate | None
    ) -> Awaitable[list[int]]:
        """Every awaited write of a live run goes here: in order, none after one that
        failed, and refused unless this runtime still owns the run."""
        return self.store.append(self.run_id, events, update, claim=self.claim, chain=self.writes)

    def _not_ours(self, error: LeaseLost | RunEnded) -> None:
        """A write was refused: another runtime took the run over, or another process
        cancelled it (or deleted its row). Either way the run stops here and writes
        nothing more."""
        if isinstance(error, LeaseLost) and error.deleted:
            log.warning("run %s was deleted from the journal while it ran; stopped it", self.run_id)
            self.supervisor.forget(self)
            self.retire()
        elif isinstance(error, LeaseLost):
            self._lost()
        else:
            self.cancel_requested = True

    def _lost(self) -> None:
        """The run was claimed again since this copy's claim (by another runtime, or by
        this one): stop here and write nothing more."""
        if self.retired:
            return
        log.warning("run %s was claimed again elsewhere; stopped this copy of it", self.run_id)
        self.supervisor.forget(self)
        self.retire()

    def _let_go(self, error: StoreUnavailable) -> None:
        """The database did not answer, or a write's outcome is unknown: stop this
        incarnation and let the runtime claim the run again once the database answers,
        replaying it from what the journal holds (never writing on a guess)."""
        if self.retired:
            return
        log.warning("run %s: %s; it is claimed again when the database answers", self.run_id, error)
        self.supervisor.forget(self)
        self.retire()
        self.supervisor.reclaim_later(self.run_id)

    def working(self) -> contextlib.AbstractContextManager[None]:
        return self

    def __enter__(self) -> None:
        """Mark the run busy while a step body runs (reentrant: gathered steps nest)."""
        self._busy += 1

    def __exit__(self, *exc_info: object) -> None:
        self._busy -= 1

    async def suspend(self, status: str, deadline: float | None, message: str | None) -> None:
        self.check_running()
        if message is not None and (self.journal.has_message(message) or message in self._nudged):
            self._nudged.discard(message)
            return
        # Park before any await, so a wake-up cannot slip in unseen.
        parked = _Parked(asyncio.get_running_loop().create_future(), message, deadline)
        self._parked.add(parked)
        timers = self.supervisor.timers
        timer = None if deadline is None else timers.call_at(deadline, parked.wake)
        try:
            self._suspending += 1  # not idle until the runtime has heard it parked
            try:
                await self._set_status(status)
            finally:
                self._suspending -= 1
            self.supervisor.note_suspended(self)
            await parked.future
        finally:
            self._parked.discard(parked)
            if timer is not None:
                timers.cancel(timer)
        self.check_running()

    @property
    def idle(self) -> bool:
        """Every branch of the run is parked and nothing of it is in flight."""
        return (
            bool(self._parked)
            and self._busy == 0
            and self._suspending == 0
            and self.writes.unsettled == 0
            and not any(parked.future.done() for parked in self._parked)
        )

    def parked_waits(self) -> list[tuple[float | None, str | None]]:
        """(deadline, message name) of each wait the run is parked on."""
        return [(parked.deadline, parked.message) for parked in self._parked]

    @property
    def positions_used(self) -> int:
        return 0 if self.ctx is None else self.ctx._positions_used()

    def retire(self) -> None:
        """Stop this incarnation where it is, writing nothing more (crash, rebuild, eviction)."""
        self.retired = True
        self._end(None)
        if self.task is not None:
            self.task.cancel()

    def _end(self, final: RunRecord | None) -> None:
        """The run ended here: ``final`` is its last row, or None if it goes on elsewhere."""
        if self._deadline_timer is not None:
            self.supervisor.timers.cancel(self._deadline_timer)
            self._deadline_timer = None
        if not self.ended:
            self.final = final
            self.ended = True
            if self._ended_event is not None:
                self._ended_event.set()

    async def wait_ended(self) -> RunRecord | None:
        """``final``, once the run has ended here (waited for on an event, so that a
        waiter's cancellation is its own). An end already committed counts even before
        the run's task has resumed to see it."""
        if self._end_write is not None and not self.ended:
            written, update = self._end_write
            committed = (
                isinstance(written, asyncio.Future)
                and written.done()
                and not written.cancelled()
                and written.exception() is None
            )
            if committed:
                self._end(self._ended_as(update))
        if not self.ended:
            if self._ended_event is None:
                self._ended_event = asyncio.Event()
            await self._ended_event.wait()
        return self.final

    def check_running(self) -> None:
        if self.cancel_requested or self.retired:
            raise asyncio.CancelledError()
        if self._fatal is not None:
            raise self._fatal
        error = self.writes.error
        if isinstance(error, (LeaseLost, RunEnded)):
            self._not_ours(error)
            raise asyncio.CancelledError()
        if isinstance(error, StoreUnavailable):
            self._let_go(error)
            raise asyncio.CancelledError()
        if error is not None:
            raise DurableError(f"a journal write of run {self.run_id!r} failed: {error}")

    def fatal(self, error: NonDeterminismError | CorruptJournal) -> None:
        self._fatal = error

    # -- driven by the runtime ------------------------------------------------

    def deliver(self, message: EventRecord) -> None:
        """A message for the run arrived: wake the waits that want it."""
        if self.journal.deliver(message):
            self.nudge(message.name)

    def nudge(self, message: str) -> None:
        """Wake the waits parked for ``message``, so they look again; with none parked
        yet, the next wait for it looks again at once (a parent that read its child's
        row just before the child ended here must not park for good)."""
        woken = False
        for parked in list(self._parked):
            if parked.message == message:
                parked.wake()
                woken = True
        if not woken:
            self._nudged.add(message)

    def cancel(self, error: str | None = None) -> None:
        """Stop the run at its current await; the journal already says cancelled (or
        failed with ``error``, when its deadline passed)."""
        if error is not None:
            self.stopped_as = (RunStatus.FAILED.value, error)
        self.cancel_requested = True
        if self.task is not None:
            self.task.cancel()

    async def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            await self._written(self._store_write([], RunUpdate(self.clock.now(), status=status)))

    def launch(self) -> None:
        self.task = asyncio.create_task(self._drive(), name=f"durable-run:{self.run_id}")
        deadline = self.record.deadline
        if deadline is not None:
            expire = functools.partial(self.supervisor.expire, self.run_id)
            self._deadline_timer = self.supervisor.timers.call_at(deadline, expire)

    async def _drive(self) -> None:
        ctx = self.ctx = WorkflowContext(self)
        token = _current.context.set(ctx)
        telemetry = self.telemetry
        span = telemetry.run_began(self)
        try:
            try:
                args, kwargs = self.workflow.decode_arguments(self.record.input)
                result = await self.workflow.fn(ctx, *args, **kwargs)
                self.check_running()
                leftover = unreplayed(self.journal, ctx._positions_used())
                if leftover is not None:
                    self._fatal = leftover
                    raise leftover
                output = encode(result, self.max_value_bytes)
            except asyncio.CancelledError:
                if self.cancel_requested and not self.retired:
                    self._end_cancelled()
                return
            except Exception as exc:
                error = self._fatal or exc
                record = error.to_record() if isinstance(error, DurableError) else _unhandled(error)
                if isinstance(error, NonDeterminismError):
                    record |= {
                        "position": error.position,
                        "expected": error.expected,
                        "received": error.received,
                    }
                if not isinstance(error, DurableError):
                    self.unhandled = error  # its traceback goes in the log line of the end
                await self._finish(
                    RunUpdate(self.clock.now(), status="failed", error=encode(record))
                )
                return
            await self._finish(RunUpdate(self.clock.now(), status="completed", output=output))
        finally:
            telemetry.run_stopped(self, span)
            # Break the cycle a finished run would leave to the garbage collector (the
            # task's context -> the workflow context -> this run -> the task), so that
            # its objects are freed at once rather than by a full collection.
            # ValueError: a task destroyed while pending (its loop closed) is closed in
            # the collector's context, not its own.
            with contextlib.suppress(ValueError):
                _current.context.reset(token)
            self.ctx = None
            self.task = None

    async def _finish(self, update: RunUpdate) -> None:
        written = self._store_write([], update)
        self._end_write = (written, update)
        if self.record.queue is not None:
            self.slot_handed_on = self.supervisor.hand_on_slot()
        try:
            await written
        except asyncio.CancelledError:
            # Cancelled from elsewhere while the end was being written: the journal says
            # cancelled, so the end write is refused; the run ends as the journal says.
            if self.cancel_requested and not self.retired:
                self._end_cancelled()
            return
        except (LeaseLost, RunEnded) as error:
            self._not_ours(error)
            if self.cancel_requested and not self.retired:
                self._end_cancelled()
            return
        except StoreUnavailable as error:
            self._let_go(error)
            return
        except Exception as error:  # not a refusal: let it go, to be claimed and ended again
            self._let_go(StoreUnavailable(f"the end of the run could not be written: {error}"))
            return
        else:
            self._end(self._ended_as(update))
        self.supervisor.run_ended(self)

    def _end_cancelled(self) -> None:
        """The journal says cancelled (written by ``rt.cancel``, here or elsewhere), or
        failed by the run's deadline."""
        status, error = self.stopped_as
        self._end(self._final(status, None, error, self.clock.now()))
        self.supervisor.run_ended(self)

    def _ended_as(self, update: RunUpdate) -> RunRecord:
        status = update.status or self.status
        return self._final(status, update.output, update.error, update.updated_at)

    def _final(
        self, status: str, output: str | None, error: str | None, updated_at: float
    ) -> RunRecord:
        """The run's row as it ended."""
        return dataclasses.replace(
            self.record, status=status, output=output, error=error, updated_at=updated_at
        )


@dataclasses.dataclass(eq=False)
class _Parked:
    """One wait of the run (a run can wait on several at once under gather)."""

    future: asyncio.Future[None]
    message: str | None
    deadline: float | None

    def wake(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    __hash__ = object.__hash__


def _unhandled(error: BaseException) -> dict[str, Any]:
    return {"code": "UNHANDLED_EXCEPTION", "type": type(error).__name__, "message": str(error)}
