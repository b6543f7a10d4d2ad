"""``rt.check()``: what needs a human after a crash.

Four things: step attempts that started and never finished (the external
effect may or may not have happened, and may have happened twice if the
step was run again), unfinished runs that no live runtime owns, unfinished
runs of workflows this process does not have, and runs failed because their
process died each time they were recovered (``RECOVERY_LIMIT``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from ._info import RunInfo
from ._journal import STEP_COMPLETED, STEP_FAILED, STEP_STARTED, RunJournal
from ._store.base import EventRecord, RunRecord


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
class CheckReport:
    interrupted_steps: list[InterruptedStep] = field(default_factory=list)
    orphaned_runs: list[RunInfo] = field(default_factory=list)
    unregistered_runs: list[RunInfo] = field(default_factory=list)
    poison_runs: list[RunInfo] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.interrupted_steps
            or self.orphaned_runs
            or self.unregistered_runs
            or self.poison_runs
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
        }


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
        if not alive:
            report.orphaned_runs.append(RunInfo.from_record(run))
        if not is_registered(run):
            report.unregistered_runs.append(RunInfo.from_record(run))
        journal = RunJournal(journals.get(run.run_id, []))
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
        started_at=dt.datetime.fromtimestamp(start.created_at, dt.timezone.utc),
        retried=retried,
    )
