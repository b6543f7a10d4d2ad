"""The records a journal is made of: runs, events, and what a write must hold.

The journal is append-only: events are never deleted or changed, except that
``rerun_from`` marks the entries it replaces as superseded, and ``prune`` deletes runs
that ended long ago, whole. What a write needs to hold is said declaratively
(``Expect``, ``claim``), so each backend checks it in SQL inside the write's own
transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from durable.errors import DurableError, StoreUnavailable

__all__ = ["StoreUnavailable"]  # raised by stores; defined with the public errors

TERMINAL = frozenset({"completed", "failed", "cancelled"})
QUEUED = "queued"
"""A run waiting for its queue to admit it: no runtime claims it until then."""


@dataclass(slots=True, unsafe_hash=True)  # not frozen, for speed (see EventRecord)
class RunRecord:
    run_id: str
    workflow: str
    version: str | None
    status: str
    input: str
    input_digest: str
    output: str | None
    error: str | None
    owner: str | None
    lease_until: float | None
    created_at: float
    updated_at: float
    parent_run_id: str | None = None
    """The run that started this one as its child (``ctx.start_child``), if any."""
    deadline: float | None = None
    """When the run fails with ``WorkflowTimeout`` if it has not ended (a timestamp)."""
    queue: str | None = None
    """The queue that admits the run (it waits ``queued`` until then), if any."""
    priority: int = 0
    dedup_key: str | None = None
    trace: str | None = None
    """The trace context current where the run was started (JSON of W3C trace context
    headers), continued by every execution of the run."""
    epoch: int = 0
    """The run's ownership epoch: every claim of the run (a recovery, a takeover, an
    admission) begins a new one, and a write made under an older one is refused."""


def claim_of(owner: str, epoch: int) -> str:
    """What an owner's write carries: the runtime and the epoch of its claim of the run.
    The stores compare it in SQL with ``owner || '@' || epoch`` of the run's row."""
    return f"{owner}@{epoch}"


def child_ended_payload(status: str) -> str:
    """The message a run's end leaves in its parent's journal, in the same transaction:
    it wakes the parent wherever it runs (the change feed carries messages)."""
    return f'{{"status":"{status}"}}'


# Not frozen: a frozen dataclass is slower to build, and a step builds several of
# these. Treat them as immutable all the same.
@dataclass(slots=True, unsafe_hash=True)
class EventRecord:
    """One journal row. ``position`` is None for messages sent to the run."""

    seq: int
    run_id: str
    position: int | None
    kind: str
    name: str
    payload: str
    created_at: float
    superseded: bool = False


@dataclass(slots=True, unsafe_hash=True)
class NewEvent:
    run_id: str
    position: int | None
    kind: str
    name: str
    payload: str
    created_at: float


@dataclass(frozen=True, slots=True)
class RunUpdate:
    """Changes to a run's row; None leaves a column as it is."""

    updated_at: float
    status: str | None = None
    output: str | None = None
    error: str | None = None
    reset_result: bool = False
    release: bool = False
    only_if_active: bool = True


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's limits as the admitting runtime declared them (None: no limit)."""

    name: str
    concurrency: int | None = None
    per_runtime: int | None = None
    rate: tuple[int, float] | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """What an admission took, and when a rate window lets the next queued run in (the
    earliest such moment over the queues whose rate held a run back; None if none did)."""

    runs: list[RunRecord]
    retry_at: float | None = None
    fresh: frozenset[str] = frozenset()
    """The runs admitted that have no journal yet (never ran): nothing to load."""


def admission_key(
    owner: str, queues: Sequence[QueueLimits], workflows: Sequence[tuple[str, str]] | None
) -> Hashable:
    """What an admission is for: a later one with the same key, queued behind it, does
    all it would (and more, after the writes between), so a store may skip the first."""
    return owner, tuple(queues), None if workflows is None else tuple(workflows)


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A cron schedule as the journal has it: when it was first seen, its latest tick run."""

    workflow: str
    cron: str
    tz: str
    first_seen: float
    last_tick: float | None


@dataclass(frozen=True, slots=True)
class Expect:
    """What must hold when a write commits, checked in its transaction.

    ``active``: the run exists and has not ended (else ``RunNotFound`` or
    ``RunEnded``). ``pending_wait``: the run's wait of that name (a
    ``wait_for_user``'s wait id) is still unanswered (else ``WaitAnswered``): journaled,
    not completed, and no message of its name in the journal. A wait id names one
    position, so every message of that name is one only that wait consumes; the check
    reads no payload (one holding U+0000 is text no SQL JSON function takes).
    """

    active: bool = True
    pending_wait: str | None = None


def executes_digest(workflows: Sequence[tuple[str, str]] | None) -> str | None:
    """What a runtime that executes ``workflows`` (name, version) writes in its lease, so
    that runtimes share free runs only with those that can run the same ones."""
    if workflows is None:
        return None
    text = "\n".join(f"{name}\t{version}" for name, version in sorted(workflows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def claimed_since(run_id: str, now: str | None) -> str:
    """Why an owner's write was refused: the run was claimed again since its claim."""
    return f"run {run_id!r} was claimed again since this write's claim (now held as {now!r})"


class LeaseLost(DurableError):
    """A runtime wrote to a run that another runtime has taken over (or whose row was
    deleted: then ``deleted`` is True)."""

    code = "LEASE_LOST"

    def __init__(self, message: str, deleted: bool = False) -> None:
        super().__init__(message)
        self.deleted = deleted


def orphaned_events(run_id: str) -> DurableError:
    """A new run whose id has journal events but no row: the row was deleted."""
    return DurableError(
        f"run {run_id!r} has journal events but no row in the runs table (was the row"
        " deleted?): restore the row, or delete that run's rows from the events table,"
        " or start the run under another id"
    )


class RunEnded(DurableError):
    """A write expected an unfinished run, and the run has ended (another process
    cancelled it, say): nothing was written. ``status`` is how it ended."""

    code = "RUN_ENDED"

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id!r} has ended {status}; nothing was written")
        self.run_id = run_id
        self.status = status


class WaitAnswered(DurableError):
    """A write expected a wait to be unanswered, and it was answered meanwhile."""

    code = "WAIT_ANSWERED"
