"""The store's ports: what the runtime asks of a journal's storage, whichever backend.

SQL lives in the implementations (``sqlite/``, ``postgres/``); values are JSON text the
store never interprets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from durable.journal.records import (
    Admitted,
    EventRecord,
    Expect,
    NewEvent,
    QueueLimits,
    RunRecord,
    RunUpdate,
    ScheduleRecord,
)


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


class RunEvents(Protocol):
    """A run's journal: its row created, its events written and read in order."""

    async def create_run(
        self, run: RunRecord, chain: WriteChain | None = None, *, fresh_id: bool = False
    ) -> tuple[RunRecord, bool]:
        """Insert ``run`` unless its id exists; returns the stored row and whether it is new.

        A run id that has events but no row (the row was deleted) is refused, unless
        ``fresh_id`` says the caller generated the id just now, so no journal holds it.
        """
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

    async def send(self, message: NewEvent, expect: Expect, key: str | None = None) -> int | None:
        """Append ``message`` (an event without a position) to its run if ``expect``
        holds; returns its seq. With ``key``, a message is kept once per run and key:
        a later send with that key writes nothing, checks nothing, and returns None."""
        ...

    async def cancel(self, run_id: str, now: float, error: str | None = None) -> list[str]:
        """End the unfinished run, ``cancelled`` (or ``failed`` with ``error``: a
        deadline), and cancel its unfinished descendants, with a cancel event each, in
        one transaction; returns the ids ended, the run's first. ``RunNotFound`` or
        ``RunEnded`` (nothing written) when the run is missing or has ended."""
        ...

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        """The run's events after ``seq``, in journal order (a reader following a run)."""
        ...

    async def load_events(self, run_ids: Sequence[str]) -> dict[str, list[EventRecord]]:
        """Every event of each run (superseded ones flagged), in journal order, in bulk."""
        ...

    async def spend_events(self, after: Mapping[str, int]) -> dict[str, list[EventRecord]]:
        """The ``budget.charged`` and ``budget.raised`` events of each run of ``after``
        with a seq past the one given for it (0: all), in journal order, read through an
        index of their own (not the rest of the journal)."""
        ...


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing keeps: ``RunRows.list_runs``'s filters, for the backends'
    SQL builders."""

    status: str | None = None
    workflow: str | None = None
    unfinished: bool = False
    after: tuple[float, str] | None = None
    since: float | None = None
    until: float | None = None
    parent: str | None = None
    id_contains: str | None = None
    id_prefix: str | None = None


class RunRows(Protocol):
    """Runs as rows: one, a page of them, counts, and pruning the ended."""

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
        id_contains: str | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (by ``created_at``, then run id); ``unfinished`` keeps only
        those not ended; ``limit`` None: all. ``after`` is the (``created_at``, run id)
        of the last run of the page before: the runs listed after it (a keyset cursor,
        so a page costs the same however deep it is). ``since`` and ``until`` bound
        ``created_at`` (``since <= created_at < until``); ``parent`` keeps the children
        of that run; ``id_contains`` and ``id_prefix`` keep the runs whose id holds
        that text, or begins with it (case-sensitive, no wildcards)."""
        ...

    async def run_tree(self, run_id: str) -> dict[str, str | None]:
        """``run_id`` (if it exists) and every run below it (children, theirs, ...), each
        with its parent (``run_id``'s: None), in one query."""
        ...

    async def run_counts(self) -> dict[tuple[str, str], int]:
        """How many runs the journal holds, by (workflow, status)."""
        ...

    async def prune(self, ended_before: float, limit: int) -> int:
        """Delete up to ``limit`` ended runs last updated before ``ended_before`` (oldest
        first), with their events and inputs, in one transaction; returns how many.
        Never an unfinished run."""
        ...


class Leases(Protocol):
    """Which runtime holds which runs: claiming, renewing, letting go."""

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


class QueueAdmission(Protocol):
    """Queued runs let in as their queues' limits allow."""

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


class Schedules(Protocol):
    """Cron schedules as the journal keeps them."""

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


class ChangeFeed(Protocol):
    """News that another connection may have committed something."""

    pushes_changes: bool
    """True when ``wait_for_change`` hears another connection's commit as it happens
    (PostgreSQL's NOTIFY); False when it polls (SQLite), so a reader that must see a
    write soon (a stream's) looks for itself."""

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


class Store(RunEvents, RunRows, Leases, QueueAdmission, Schedules, ChangeFeed, Protocol):
    """A journal's storage: every port, opened and closed as one."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
