"""Stopping and restarting runs from outside: cancel, deadlines, resume, re-run.

A cancel ends the run and its unfinished descendants in one transaction
(``Store.cancel``); a deadline does the same with the run ``failed`` by
``WorkflowTimeout``. Its timer runs in the runtime that executes the run, so a
deadline that passed while no process ran fails the run as soon as one claims it.
"""

from __future__ import annotations

from durable._base.aio import TaskSet
from durable._base.clock import Clock
from durable._base.codec import encode, loads
from durable.errors import DurableError, RunNotFound, StepFailed, WorkflowTimeout
from durable.journal.info import RunStatus
from durable.journal.kinds import RERUN, RESUMED, STEP_FAILED, STREAM_VOIDED
from durable.journal.records import NewEvent, RunEnded, RunRecord, RunUpdate
from durable.journal.run_journal import payload
from durable.journal.streams import voided, voided_by_rerun
from durable.runtime.admission import Admission
from durable.runtime.changes import Changes
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.ownership import Ownership
from durable.runtime.reading import Reading
from durable.runtime.residency import Residency
from durable.runtime.timers import Timers
from durable.store.ports import Store
from durable.workflow.logs import log


class Control:
    """The runtime's part that cancels, times out, resumes and re-runs runs."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        timers: Timers,
        poll_interval: float,
        lifecycle: Lifecycle,
        reading: Reading,
        residency: Residency,
        changes: Changes,
        ownership: Ownership,
        admission: Admission,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timers = timers
        self.poll_interval = poll_interval
        self.lifecycle = lifecycle
        self.reading = reading
        self.residency = residency
        self.changes = changes
        self.ownership = ownership
        self.admission = admission
        self._tasks = TaskSet()

    async def cancel(self, run_id: str) -> None:
        self.lifecycle.check_open()
        try:
            ended = await self.store.cancel(run_id, self.clock.now())
        except RunEnded as error:
            raise DurableError(
                f"run {run_id!r} already ended {error.status}; nothing to cancel"
            ) from None
        self._stopped(ended, None)

    def expire(self, run_id: str) -> None:
        """The run's deadline passed (a timer of the runtime that executes it)."""
        if self.lifecycle.is_open:
            self._tasks.spawn(self._expire(run_id))

    async def _expire(self, run_id: str) -> None:
        error = WorkflowTimeout(
            f"run {run_id!r} did not end before its deadline; it was failed and its"
            " unfinished children cancelled"
        )
        text = encode(error.to_record())
        try:
            ended = await self.store.cancel(run_id, self.clock.now(), error=text)
        except (RunEnded, RunNotFound):  # it ended meanwhile
            return
        except Exception:
            log.exception("durable: failing run %s at its deadline failed; retrying", run_id)
            again = self.clock.now() + self.poll_interval
            self.timers.call_at(again, lambda: self.expire(run_id))
            return
        self._stopped(ended, text)

    def _stopped(self, ended: list[str], error: str | None) -> None:
        for index, run_id in enumerate(ended):
            self.residency.forget_cancelled(run_id, error if index == 0 else None)
        self.changes.notify()

    async def resume(self, run_id: str) -> None:
        """A run that failed in a step retries from that step (its recorded failure
        superseded, as ``rerun_from`` does); one that failed elsewhere replays its
        journal under the current code."""
        record = await self.reading.record(run_id)
        if record.status != RunStatus.FAILED:
            raise DurableError(
                f"run {run_id!r} is {record.status}; only a failed run can be resumed"
                " (rt.rerun_from re-executes a finished run from a position)"
            )
        position = await self._failed_step(record)
        if position is not None:
            return await self.rerun_from(run_id, position)
        now = self.clock.now()
        update = RunUpdate(
            now, status=_again(record), reset_result=True, release=True, only_if_active=False
        )
        resumed = NewEvent(run_id, None, RESUMED, "resumed", "{}", now)
        await self.store.append(run_id, [resumed], update)
        await self._take(record)

    async def rerun_from(self, run_id: str, position: int) -> None:
        record = await self.reading.record(run_id)
        if record.status not in (RunStatus.COMPLETED, RunStatus.FAILED):
            raise DurableError(
                f"run {run_id!r} is {record.status}; rerun_from needs a completed or failed run"
            )
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}")
        now = self.clock.now()
        # The stream values of the attempts it supersedes are void (readers retract them).
        events = (await self.store.load_events([run_id]))[run_id]
        voids = [
            NewEvent(run_id, None, STREAM_VOIDED, "rerun", voided(*attempt), now)
            for attempt in voided_by_rerun(events, position)
        ]
        marker = NewEvent(run_id, None, RERUN, "rerun", encode({"position": position}), now)
        update = RunUpdate(
            now, status=_again(record), reset_result=True, release=True, only_if_active=False
        )
        await self.store.supersede(run_id, position, update, [*voids, marker])
        await self._take(record)

    async def _failed_step(self, record: RunRecord) -> int | None:
        """The position of the step whose final failure ended the run, if one did."""
        error = loads(record.error or "{}")
        if not isinstance(error, dict) or error.get("code") != StepFailed.code:
            return None
        events = (await self.store.load_events([record.run_id]))[record.run_id]
        failures = [
            event
            for event in events
            if event.kind == STEP_FAILED
            and not event.superseded
            and event.position is not None
            and "final" in payload(event)
        ]
        ending = [event for event in failures if event.name == error.get("step")] or failures
        return None if not ending else ending[-1].position

    async def _take(self, record: RunRecord) -> None:
        """Run it here if this runtime may: a queued run through its queue."""
        if record.queue is None:
            await self.ownership.claim(include_own=True, run_ids=[record.run_id])
        else:
            self.admission.admit_soon()


def _again(record: RunRecord) -> str:
    """The status a run starts over in: a run of a queue waits for it again."""
    return "pending" if record.queue is None else "queued"
