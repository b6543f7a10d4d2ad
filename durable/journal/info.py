"""Public read-only views of runs and waits, built from store records."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from durable._base.codec import loads
from durable._base.numbers import utc_moment
from durable.errors import CorruptJournal
from durable.journal.records import TERMINAL, EventRecord, RunRecord
from durable.journal.run_journal import payload, stored


class RunStatus(enum.StrEnum):
    """A run's status; the strings are what the journal stores."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES = frozenset(status.value for status in RunStatus)


def unknown_status(run_id: str, status: str) -> CorruptJournal:
    """The error for a run whose row holds a status no version of durable writes."""
    return CorruptJournal(
        f"run {run_id!r} has the status {status!r} in the runs table, which no version of"
        f" durable writes (it writes {', '.join(sorted(STATUSES))}); the run was not guessed"
        " at: correct the row or restore it from a backup, then rt.resume() the run"
    )


def moment(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else utc_moment(seconds)


@dataclass(frozen=True)
class RunInfo:
    """A run as the journal has it. ``input`` is ``{"args": [...], "kwargs": {...}}`` JSON
    data, with ``"budget"`` when the run was started with one."""

    run_id: str
    workflow: str
    version: str | None
    status: RunStatus | str
    """The run's status; a status no version of durable wrote is kept as the text the
    row holds (a plain ``str``), with ``unreadable`` saying so, until a runtime claims
    the run and fails it with ``CorruptJournal``."""
    input: Any
    output: Any
    error: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime
    parent_run_id: str | None = None
    """The run that started this one as a child (``ctx.start_child``), or None."""
    queue: str | None = None
    """The queue the run went through (``durable.Queue``), or None."""
    deadline: dt.datetime | None = None
    """When the run fails with ``WorkflowTimeout`` unless it has ended."""
    unreadable: str | None = None
    """Set when the run's row cannot be read as it is: a column that is not JSON (that
    value is then None) or a status no version wrote; what and how to fix it. A listing
    shows such a run beside the others."""
    owner: str | None = None
    """The runtime that claimed the unfinished run, as the journal has it; None once a
    runtime released it (it stopped cleanly, or the run is parked), and for an ended
    run."""
    lease_until: dt.datetime | None = None
    """Until when the owner's claim holds unless renewed: a claim past it is a dead
    runtime's, which the next runtime takes over."""

    def has_live_owner(self, now: dt.datetime | None = None) -> bool:
        """Whether a runtime holds the run now (its lease not yet run out). An unfinished
        run without one waits for a worker, whatever its status says."""
        now = now or dt.datetime.now(dt.UTC)
        return self.owner is not None and self.lease_until is not None and self.lease_until >= now

    @classmethod
    def from_record(cls, record: RunRecord) -> RunInfo:
        values: list[Any] = []
        problems: list[str] = []
        for name in ("input", "output", "error"):
            try:
                values.append(_column(record, name))
            except CorruptJournal as exc:  # listed all the same, marked
                values.append(None)
                problems.append(str(exc))
        status: RunStatus | str = record.status
        held = record.status not in TERMINAL
        if record.status in STATUSES:
            status = RunStatus(record.status)
        else:
            problems.insert(0, str(unknown_status(record.run_id, record.status)))
        return cls(
            run_id=record.run_id,
            workflow=record.workflow,
            version=record.version,
            status=status,
            input=values[0],
            output=values[1],
            error=values[2],
            created_at=utc_moment(record.created_at),
            updated_at=utc_moment(record.updated_at),
            parent_run_id=record.parent_run_id,
            queue=record.queue,
            deadline=moment(record.deadline),
            unreadable="; ".join(problems) or None,
            owner=record.owner if held else None,
            lease_until=moment(record.lease_until) if held else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (the CLI's ``--json`` and the HTTP API)."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "version": self.version,
            "status": str(self.status),
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "parent_run_id": self.parent_run_id,
            "queue": self.queue,
            "deadline": None if self.deadline is None else self.deadline.isoformat(),
            "owner": self.owner,
            "lease_until": None if self.lease_until is None else self.lease_until.isoformat(),
        } | ({"unreadable": self.unreadable} if self.unreadable else {})


@dataclass(frozen=True)
class PendingWait:
    """A question for a person that has no answer yet: a ``wait_for_user``, or a budget
    reached (``input_type="budget"``: answer ``"stop"``, or raise the budget)."""

    run_id: str
    wait_id: str
    question: str
    input_type: str
    options: list[dict[str, str]] | None
    created_at: dt.datetime
    deadline: dt.datetime | None
    budget: dict[str, Any] | None = None
    """For a budget question (``input_type="budget"``): the run that holds the budget,
    the unit whose cap was reached, what was spent and the caps."""

    @classmethod
    def from_event(cls, event: EventRecord) -> PendingWait:
        data = payload(event)  # a question without its text is CorruptJournal
        return cls(
            run_id=event.run_id,
            wait_id=event.name,
            question=data["question"],
            input_type=data["input_type"],
            options=data.get("options"),
            created_at=dt.datetime.fromtimestamp(event.created_at, dt.UTC),
            deadline=moment(data.get("deadline")),
            budget=data.get("budget"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **vars(self),
            "created_at": self.created_at.isoformat(),
            "deadline": None if self.deadline is None else self.deadline.isoformat(),
        }


def event_dict(event: EventRecord) -> dict[str, Any]:
    """One journal event as a JSON-ready dict (the unit of ``rt.history``)."""
    return {
        "seq": event.seq,
        "position": event.position,
        "kind": event.kind,
        "name": event.name,
        "payload": stored(event),  # as it is, whatever its shape
        "created_at": _iso(event.created_at),
        "superseded": event.superseded,
    }


HISTORY_FORMAT = "durable.history"
HISTORY_VERSION = 1


def history_document(record: RunRecord, events: list[EventRecord]) -> dict[str, Any]:
    """The export format: ``{"format", "version", "run", "events"}``, all JSON data."""
    return {
        "format": HISTORY_FORMAT,
        "version": HISTORY_VERSION,
        "run": {
            "run_id": record.run_id,
            "workflow": record.workflow,
            "version": record.version,
            "status": record.status,
            "input": _column(record, "input"),
            "output": _column(record, "output"),
            "error": _column(record, "error"),
            "created_at": _iso(record.created_at),
            "updated_at": _iso(record.updated_at),
            "parent_run_id": record.parent_run_id,
        },
        "events": [event_dict(event) for event in events],
    }


def _column(record: RunRecord, name: str) -> Any:
    """A JSON column of a run's row, or ``CorruptJournal`` naming the run, the column
    and the fix (an export must not leave out what it cannot read)."""
    text = getattr(record, name)
    if text is None:
        return None
    try:
        return loads(text)
    except ValueError as exc:
        raise CorruptJournal(
            f"run {record.run_id!r}: its {name} in the runs table is not JSON ({exc});"
            " correct the row or restore it from a backup"
        ) from None


def _iso(seconds: float) -> str:
    return utc_moment(seconds).isoformat()
