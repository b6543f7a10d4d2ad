"""``rt.check()``: what needs a human after a crash, or before the next answer.

Six things: step attempts that started and never finished (the external
effect may or may not have happened, and may have happened twice if the
step was run again), unfinished runs whose owner died and that no live
runtime has taken over, unfinished runs of workflows this process does not
have, runs failed because their process died each time they were recovered
(``RECOVERY_LIMIT``), runs whose journal or row cannot be read (``CORRUPT_JOURNAL``:
unfinished ones found now, and those a runtime failed for it), and unfinished runs
whose journal the current code no longer replays: found before a deploy, not when
the run next wakes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from durable.errors import CorruptJournal, RecoveryLimit
from durable.journal.info import STATUSES, RunInfo, unknown_status
from durable.journal.kinds import STEP_COMPLETED, STEP_FAILED, STEP_STARTED
from durable.journal.records import EventRecord, RunRecord
from durable.journal.run_journal import RunJournal
from durable.store.ports import Store
from durable.workflow.decorators import registered
from durable.workflow.replay import divergence


@dataclass(frozen=True)
class InterruptedStep:
    """A step attempt whose start is journaled and whose end is not.

    ``retried`` is True when a later attempt of the same step started after
    it: whatever the step does outside may have happened twice.
    """

    run_id: str
    workflow: str
    position: int
    step: str
    attempt: int
    started_at: dt.datetime
    retried: bool


@dataclass(frozen=True)
class DivergedRun:
    """An unfinished run whose journal the current code does not replay: running it on
    would fail it with ``error`` (a ``NonDeterminismError`` message). ``position`` is
    the first call that differs, ``expected`` what the journal has there and
    ``received`` what the code calls now."""

    run_id: str
    workflow: str
    status: str
    error: str
    position: int | None = None
    expected: str | None = None
    received: str | None = None


@dataclass(frozen=True)
class CheckReport:
    interrupted_steps: list[InterruptedStep] = field(default_factory=list)
    orphaned_runs: list[RunInfo] = field(default_factory=list)
    unregistered_runs: list[RunInfo] = field(default_factory=list)
    poison_runs: list[RunInfo] = field(default_factory=list)
    diverged_runs: list[DivergedRun] = field(default_factory=list)
    corrupt_runs: list[RunInfo] = field(default_factory=list)
    """Runs whose journal or row cannot be read: unfinished ones (with ``unreadable``
    saying what and the fix), and runs failed with ``CORRUPT_JOURNAL``."""

    @property
    def ok(self) -> bool:
        return not (
            self.interrupted_steps
            or self.orphaned_runs
            or self.unregistered_runs
            or self.poison_runs
            or self.diverged_runs
            or self.corrupt_runs
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the command line."""
        return {
            "ok": self.ok,
            "interrupted_steps": [
                {**vars(step), "started_at": step.started_at.isoformat()}
                for step in self.interrupted_steps
            ],
            "orphaned_runs": [run.run_id for run in self.orphaned_runs],
            "unregistered_runs": [
                {"run_id": run.run_id, "workflow": run.workflow, "version": run.version}
                for run in self.unregistered_runs
            ],
            "poison_runs": [run.run_id for run in self.poison_runs],
            "diverged_runs": [vars(run) for run in self.diverged_runs],
            "corrupt_runs": [
                {
                    "run_id": run.run_id,
                    "problem": run.unreadable or (run.error or {}).get("message"),
                }
                for run in self.corrupt_runs
            ],
        }


async def check(
    store: Store,
    runs: list[RunRecord],
    owned_by_live_runtime: Callable[[RunRecord], bool],
    here: Collection[str],
    *,
    unregistered: bool,
) -> CheckReport:
    """The report of ``rt.check()`` on the unfinished ``runs``, with ``here`` the runs
    this runtime holds: everything read from the journal, nothing written."""
    journals = await store.load_events([run.run_id for run in runs])
    report = build_report(
        runs,
        journals,
        owned_by_live_runtime,
        lambda run: not unregistered or registered(run.workflow, run.version) is not None,
        here,
    )
    corrupt = {run.run_id for run in report.corrupt_runs}
    for run in runs:
        wf = registered(run.workflow, run.version)
        if wf is not None and run.run_id not in corrupt:
            try:
                error = await divergence(
                    wf, run.run_id, run.input, journals[run.run_id], run.updated_at
                )
            except CorruptJournal as unreadable:
                error = unreadable
            if isinstance(error, CorruptJournal):
                report.corrupt_runs.append(_corrupt(run, error))
            elif error is not None:
                report.diverged_runs.append(
                    DivergedRun(
                        run.run_id,
                        run.workflow,
                        run.status,
                        error.message,
                        error.position,
                        error.expected,
                        error.received,
                    )
                )
    failed = list(map(RunInfo.from_record, await store.list_runs(status="failed", limit=None)))
    for code, found in (
        (RecoveryLimit.code, report.poison_runs),
        (CorruptJournal.code, report.corrupt_runs),
    ):
        found.extend(info for info in failed if (info.error or {}).get("code") == code)
    return report


def _corrupt(run: RunRecord, error: CorruptJournal) -> RunInfo:
    """The run as listed, with what cannot be read in it."""
    info = RunInfo.from_record(run)
    problems = "; ".join(filter(None, (info.unreadable, str(error))))
    return dataclasses.replace(info, unreadable=problems)


def build_report(
    runs: list[RunRecord],
    journals: dict[str, list[EventRecord]],
    owned_by_live_runtime: Callable[[RunRecord], bool],
    is_registered: Callable[[RunRecord], bool],
    live_here: Collection[str],
) -> CheckReport:
    report = CheckReport()
    for run in runs:
        alive = run.run_id in live_here or owned_by_live_runtime(run)
        # A run owned by no one was stopped cleanly or never started: the next runtime
        # with its workflow takes it. Only a dead owner's run is orphaned.
        if not alive and run.owner is not None:
            report.orphaned_runs.append(RunInfo.from_record(run))
        if not is_registered(run):
            report.unregistered_runs.append(RunInfo.from_record(run))
        try:
            if run.status not in STATUSES:
                raise unknown_status(run.run_id, run.status)
            journal = RunJournal(journals.get(run.run_id, []))
        except CorruptJournal as error:
            report.corrupt_runs.append(_corrupt(run, error))
            continue
        for position, events in sorted(journal.live.items()):
            report.interrupted_steps.extend(_open_attempts(run, position, events, alive))
    return report


def _open_attempts(
    run: RunRecord, position: int, events: list[EventRecord], alive: bool
) -> list[InterruptedStep]:
    found = []
    open_start: EventRecord | None = None
    attempt = 0
    for event in events:
        if event.kind == STEP_STARTED:
            if open_start is not None:
                found.append(_interrupted(run, position, open_start, attempt, retried=True))
            open_start = event
            attempt += 1
        elif event.kind in (STEP_COMPLETED, STEP_FAILED):
            open_start = None
    if open_start is not None and not alive:
        found.append(_interrupted(run, position, open_start, attempt, retried=False))
    return found


def _interrupted(
    run: RunRecord, position: int, start: EventRecord, attempt: int, *, retried: bool
) -> InterruptedStep:
    return InterruptedStep(
        run_id=run.run_id,
        workflow=run.workflow,
        position=position,
        step=start.name,
        attempt=attempt,
        started_at=dt.datetime.fromtimestamp(start.created_at, dt.UTC),
        retried=retried,
    )
