"""How the store calls the PostgreSQL journal's functions (their text:
``postgres/functions/*.sql``, installed by ``schema.py``).

Every journal write goes through ``append``, a run's start included: it locks the
run's row, checks in SQL what the write expects (held under the writer's claim,
still unfinished, a wait still unanswered) and numbers the events as the SQLite
writer does: ``seq`` counts up within a run, and an event without a position also
follows every earlier such event of any run. For that last rule writers of such
events take one advisory lock until they commit, so their seqs are also in commit
order and ``changes_since`` can follow them with one cursor. A refused write returns
why (``refused``) and writes nothing; it does not raise, so it does not abort the
other writes of its batch. Queue admission is ``admit``.

Each function runs with ``enable_seqscan = off``: every statement in them finds its
rows by an index, but plpgsql plans a statement once for any parameters, and for
``run_id = ANY($1)`` over a runs table of a few thousand rows the planner takes a
scan of the whole table as cheaper, a cost that grows with the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from durable.errors import RunNotFound
from durable.journal.records import (
    Expect,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    WaitAnswered,
    claimed_since,
    orphaned_events,
)

MESSAGE_LOCK = 7_213_931_000_001
"""The advisory lock held by transactions that append events without a position (the
function files spell it out: a test checks they agree)."""

QUEUE_LOCK = 7_213_931
"""With a hash of the schema and queue name, the advisory lock an admission to the queue
holds until it commits (in ``admit.sql``)."""

RUN_COLUMNS = (
    "runs.run_id, workflow, version, status, run_inputs.input, input_digest, output, error,"
    " runs.owner, owners.lease_until, created_at, updated_at, parent_run_id, deadline,"
    " queue, priority, dedup_key, trace, runs.epoch"
)
"""A run as read, its input and its lease beside it: ``RunRecord``'s fields in order
(``admit.sql`` returns the same columns: change both)."""


class Write(NamedTuple):
    """``append``'s parameters, in its order: one write of a run (a start, or events
    and a change to the run's row)."""

    run_id: str
    claim: str | None
    """The owner's claim (``claim_of``) the write is made under; None for no owner's."""
    expect_active: bool | None
    pending_wait: str | None
    has_update: bool
    status: str | None
    output: str | None
    error: str | None
    updated_at: float | None
    reset: bool
    release: bool
    only_if_active: bool
    positions: list[int | None]
    kinds: list[str]
    names: list[str]
    payloads: list[str]
    created: list[float]
    workflow: str | None = None
    """Set for a start: the run's row is written (the fields from here on and
    ``status``, ``output``, ``error``, ``updated_at``), unless its id has one."""
    version: str | None = None
    input: str | None = None
    input_digest: str | None = None
    owner: str | None = None
    created_at: float | None = None
    parent_run_id: str | None = None
    deadline: float | None = None
    queue: str | None = None
    priority: int = 0
    dedup_key: str | None = None
    trace: str | None = None
    check_orphans: bool = False


APPEND_PARAMETERS = len(Write._fields)


def append_args(
    run_id: str,
    events: Sequence[NewEvent],
    update: RunUpdate | None,
    expect: Expect | None,
    claim: str | None,
) -> Write:
    u = update
    return Write(
        run_id,
        claim,
        None if expect is None else expect.active,
        None if expect is None else expect.pending_wait,
        u is not None,
        u.status if u else None,
        u.output if u else None,
        u.error if u else None,
        u.updated_at if u else None,
        bool(u and u.reset_result),
        bool(u and u.release),
        bool(u.only_if_active) if u else True,
        [event.position for event in events],
        [event.kind for event in events],
        [event.name for event in events],
        [event.payload for event in events],
        [event.created_at for event in events],
    )


def start_args(run: RunRecord, check_orphans: bool) -> Write:
    """A start: ``append``'s parameters that write the run's row."""
    return Write(
        run.run_id,
        None,
        None,
        None,
        False,
        run.status,
        run.output,
        run.error,
        run.updated_at,
        False,
        False,
        True,
        [],
        [],
        [],
        [],
        [],
        run.workflow,
        run.version,
        run.input,
        run.input_digest,
        run.owner,
        run.created_at,
        run.parent_run_id,
        run.deadline,
        run.queue,
        run.priority,
        run.dedup_key,
        run.trace,
        check_orphans,
    )


class Call(NamedTuple):
    """One ``append`` call of a batch: one write, or adjacent writes ``joined``, with
    how many events each of them adds."""

    write: Write
    counts: list[int]


def joined(writes: Iterable[Write]) -> list[Call]:
    """The writes as ``append`` calls, in order: adjacent writes an owner makes to its
    run, none but the last changing the run's row or expecting more than the claim,
    share a call (a step's end and the next step's start: one call, not two). The call
    checks the claim, then changes the row, then adds the events in order, as the
    writes one by one would."""
    groups: list[list[Write]] = []
    for write in writes:
        if groups and _joins(groups[-1][-1], write):
            groups[-1].append(write)
        else:
            groups.append([write])
    return [_call(group) for group in groups]


def _call(group: list[Write]) -> Call:
    """One call for adjacent writes: the last one's checks and change of the row, every
    write's events in order (concatenated once, however many writes share it)."""
    last = group[-1]
    if len(group) > 1:
        last = last._replace(
            positions=[value for write in group for value in write.positions],
            kinds=[value for write in group for value in write.kinds],
            names=[value for write in group for value in write.names],
            payloads=[value for write in group for value in write.payloads],
            created=[value for write in group for value in write.created],
        )
    return Call(last, [len(write.kinds) for write in group])


def _joins(before: Write, write: Write) -> bool:
    return (
        before.claim is not None
        and (before.run_id, before.claim) == (write.run_id, write.claim)
        and not before.has_update
        and before.expect_active is None
        and before.pending_wait is None
        and write.pending_wait is None
        and before.workflow is None
        and write.workflow is None
    )


def split_rows(calls: list[Call], rows: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Each joined write's own row out of its call's: the call's refusal, and the seq
    of its own first event."""
    for call, row in zip(calls, rows, strict=True):
        first = row["first_seq"]
        for count in call.counts:
            yield {"refused": row["refused"], "detail": row["detail"], "first_seq": first}
            if first is not None:
                first += count


def append_outcome(run_id: str, expect: Expect | None, count: int) -> Callable[[Any], list[int]]:
    """What an ``append`` row of a write of ``count`` events means: the new events'
    seqs, or the refusal to raise."""

    def finish(row: Any) -> list[int]:
        if row["refused"] is not None:
            raise refusal(run_id, row["refused"], row["detail"], expect)
        return added_seqs(row, count)

    return finish


def added_seqs(row: Any, count: int) -> list[int]:
    """The seqs of the ``count`` events an ``append`` row says it added: none if it
    changed nothing (a change only to an unfinished run, to an ended one)."""
    first = row["first_seq"]
    return [] if first is None else list(range(first, first + count))


def start_outcome(run_id: str) -> Callable[[Any], bool]:
    """What a start's row means: True if it wrote the run, False if the id has a run;
    an id whose events outlived its row raises."""

    def finish(row: Any) -> bool:
        if row["refused"] == "orphaned":
            raise orphaned_events(run_id)
        return row["refused"] is None

    return finish


def refusal(run_id: str, refused: str, detail: str | None, expect: Expect | None) -> Exception:
    if refused == "lease_lost":
        return LeaseLost(claimed_since(run_id, detail))
    if refused == "deleted":
        return LeaseLost(f"run {run_id!r} was deleted from the runs table", deleted=True)
    if refused == "ended":
        return RunEnded(run_id, detail or "")
    if refused == "not_found":
        return RunNotFound(run_id)
    wait = expect.pending_wait if expect else None
    return WaitAnswered(f"wait {wait!r} of run {run_id!r} was answered")
