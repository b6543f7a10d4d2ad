"""The ``Store`` protocol and the records it deals in.

The runtime and the workflow context speak only this protocol; SQL lives in
the implementations (``sqlite.py``, ``postgres.py``), and nothing here is
particular to one of them. Values are JSON text: the store never interprets
them. The journal is append-only: events are never deleted or changed,
except that ``rerun_from`` marks the entries it replaces as superseded, and
``prune`` deletes runs that ended long ago, whole.
What a write needs to hold is said declaratively (``Expect``, ``claim``), so
each backend checks it in SQL inside the write's own transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import DurableError, StoreUnavailable

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


MESSAGE = "message"
"""The kind of an event sent to a run (an answer, an event, a child's end)."""
CANCEL = "run.cancel"
"""The kind of the event a cancel leaves in the run's journal. The stores write these
two kinds themselves (a child's end, a cancelled tree); ``_journal.py`` names the rest."""

PUBLISHED = ("state.", "stream.")
"""The kinds (by prefix) of the events a run publishes for others to read: its state
and its streams. A store that notifies other connections of writes notifies these too."""

CHILD_ENDED = "child:"
"""The name, before the child's run id, of the message a child's end leaves its parent."""


def child_ended_payload(status: str) -> str:
    """The message a run's end leaves in its parent's journal, in the same transaction:
    it wakes the parent wherever it runs (the change feed carries messages)."""
    return f'{{"status":"{status}"}}'


# Not frozen: a frozen dataclass is four times slower to build, and a step builds
# several of these. Treat them as immutable all the same.
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


class WriteChain:
    """A sequence of writes (one run's) that commit in order, none after one that failed.

    The writer sets ``error`` when a write of the chain fails; later writes of
    the chain are then refused with that error without being run, so a caller
    that did not wait for a write can never leave a hole in its journal.
    """

    __slots__ = ("error", "unsettled")

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.unsettled = 0
        """Writes submitted and not yet committed or failed."""


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


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_run(
        self, run: RunRecord, chain: WriteChain | None = None, *, fresh_id: bool = False
    ) -> tuple[RunRecord, bool]:
        """Insert ``run`` unless its id exists; returns the stored row and whether it is new.

        A run id that has events but no row (the row was deleted) is refused, unless
        ``fresh_id`` says the caller generated the id just now, so no journal holds it.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = 100,
        unfinished: bool = False,
        *,
        after: tuple[float, str] | None = None,
        since: float | None = None,
        until: float | None = None,
        parent: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (by ``created_at``, then run id); ``unfinished`` keeps only
        those not ended; ``limit`` None: all. ``after`` is the (``created_at``, run id)
        of the last run of the page before: the runs listed after it. ``since`` and
        ``until`` bound ``created_at`` (``since <= created_at < until``); ``parent``
        keeps the children of that run."""
        ...

    async def prune(self, ended_before: float, limit: int) -> int:
        """Delete up to ``limit`` ended runs last updated before ``ended_before`` (oldest
        first), with their events and inputs, in one transaction; returns how many.
        Never an unfinished run."""
        ...

    def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None = None,
        expect: Expect | None = None,
        claim: str | None = None,
        chain: WriteChain | None = None,
    ) -> Awaitable[list[int]]:
        """Atomically append ``events`` and apply ``update``; awaiting gives the events' seqs.

        With ``claim`` (``claim_of``), the write is refused with ``LeaseLost`` (nothing
        written) unless the run is still held under that claim (no runtime, this one
        included, has claimed it since), and with ``RunEnded`` (nothing
        written) if the run has ended meanwhile (it was cancelled). With
        ``expect``, it is refused (nothing written) unless that holds.

        The write is queued when ``append`` is called, so one caller's writes
        commit in call order even if it does not await each one; with ``chain``
        none of them is written after one has failed. Without ``claim``, with
        ``update.only_if_active``, a finished run is not changed and its events
        are not written (an empty list is returned).

        A write that ends a run with a parent (any write: its own end, a cancel, a
        deadline) also leaves the parent the message ``CHILD_ENDED + run_id`` with
        ``child_ended_payload``, in the same transaction.
        """
        ...

    async def send(self, message: NewEvent, expect: Expect, key: str | None = None) -> int | None:
        """Append ``message`` (an event without a position) to its run if ``expect``
        holds; returns its seq. With ``key``, a message is kept once per run and key:
        a later send with that key writes nothing, checks nothing, and returns None."""
        ...

    def admit(
        self,
        owner: str,
        lease_until: float,
        now: float,
        queues: Sequence[QueueLimits],
        *,
        limit: int,
        workflows: Sequence[tuple[str, str]] | None = None,
    ) -> Awaitable[Admitted]:
        """Admit queued runs of ``queues`` (of ``workflows``), lowest priority first, then
        first come, as far as each queue's limits allow, and claim them for ``owner``,
        atomically with every other runtime's admission to those queues. A run admitted
        holds its slot until it ends; ``rate`` counts the runs admitted in the window
        before ``now``.

        Queued before it returns, behind the writes queued before it: an admission asked
        for right behind the end of a run of the queue sees its slot free, and commits in
        the same transaction as that end (the slot is handed on in one commit)."""
        ...

    async def queue_names(self) -> list[str]:
        """The queues that runs of this journal went through, by name."""
        ...

    async def queue_counts(self, queue: str) -> tuple[int, int]:
        """How many runs of ``queue`` are queued, and how many admitted and unfinished."""
        ...

    async def run_counts(self) -> dict[tuple[str, str], int]:
        """How many runs the journal holds, by (workflow, status)."""
        ...

    async def see_schedule(self, workflow: str, cron: str, tz: str, now: float) -> ScheduleRecord:
        """Record that ``workflow`` runs on ``cron`` in ``tz`` (first seen ``now`` unless
        seen before: the moment from which missed ticks count); returns the record."""
        ...

    async def note_tick(self, workflow: str, tick: float) -> None:
        """The run of ``workflow``'s tick at ``tick`` was started (the latest is kept)."""
        ...

    async def schedules(self) -> list[ScheduleRecord]:
        """Every schedule seen on this journal."""
        ...

    async def cancel(self, run_id: str, now: float, error: str | None = None) -> list[str]:
        """End the unfinished run, ``cancelled`` (or ``failed`` with ``error``: a
        deadline), and cancel its unfinished descendants, with a cancel event each, in
        one transaction; returns the ids ended, the run's first. ``RunNotFound`` or
        ``RunEnded`` (nothing written) when the run is missing or has ended."""
        ...

    def append_nowait(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None,
        claim: str,
        chain: WriteChain,
    ) -> None:
        """``append`` for a caller that does not wait for the commit.

        The write commits before the chain's later writes; if it fails, the
        error is kept in ``chain`` and the chain's later writes are refused.
        """
        ...

    async def supersede(
        self, run_id: str, position: int, update: RunUpdate, events: Sequence[NewEvent] = ()
    ) -> int:
        """Mark the run's events at or after ``position`` superseded, append ``events``
        and apply ``update``, atomically; returns how many events were superseded."""
        ...

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        """The run's events after ``seq``, in journal order (a reader following a run)."""
        ...

    async def load_events(self, run_ids: Sequence[str]) -> dict[str, list[EventRecord]]:
        """Every event of each run (superseded ones flagged), in journal order, in bulk."""
        ...

    async def owners(self) -> dict[str, float]:
        """Every runtime holding a lease, with the time its lease runs out."""
        ...

    async def claim(
        self,
        owner: str,
        lease_until: float,
        now: float,
        *,
        limit: int,
        dead_owners: Sequence[str] = (),
        run_ids: Sequence[str] | None = None,
        workflows: Sequence[tuple[str, str]] | None = None,
        include_own: bool = True,
        skip: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Take unfinished runs that are free: no owner, lease lapsed, owner in
        ``dead_owners``, or (``include_own``) ours already, but none of ``skip``.
        Queued runs are not taken (``admit`` does), and a free run of a queue that is
        not ours goes back to its queue instead, so that its slot is given back and
        its queue admits it again. Every run taken begins a new epoch (``RunRecord``
        comes back with it, and with the owner it had before).

        Of the free runs of other owners or none, it takes at most ``limit`` and at
        most what brings it to its fair share of the runs held by runtimes holding a
        lease and the free ones, divided by those runtimes, so that runtimes polling
        together split the work; runs it owns already are always taken. ``workflows``
        limits it to runs of these (name, version) pairs. Runs claimed by another
        runtime in the same moment are skipped, never waited for.
        """
        ...

    async def renew(self, owner: str, lease_until: float, now: float) -> set[str] | None:
        """Extend ``owner``'s lease, which covers every run it holds (one write).

        Returns None if the lease had not lapsed; otherwise another runtime may
        have taken runs meanwhile, and it returns the ids of the runs still held.
        """
        ...

    async def release(self, owner: str, run_ids: Sequence[str] = ()) -> None:
        """Give up ``owner``'s lease: its unfinished runs are free to claim at once, and
        those of ``run_ids`` (stopped by a clean shutdown, not a crash) owned by no one."""
        ...

    async def changes_since(self, seq: int) -> list[EventRecord]:
        """Events without a position (messages, cancels) after ``seq``, in order: what
        another process may have written for runs this one holds."""
        ...

    async def last_seq(self) -> int:
        """The cursor for ``changes_since``: the seq of the newest event without a position."""
        ...

    async def wait_for_change(self, timeout: float) -> bool:
        """The change feed: return True as soon as another connection may have
        committed something (a new run, a message, a cancel, a run's end), or False
        after ``timeout`` seconds without a sign of one. A lost connection counts
        as a change (what was missed is read again)."""
        ...
