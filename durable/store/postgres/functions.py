"""How the store calls the PostgreSQL journal's functions (their text:
``postgres/functions/*.sql``, installed by ``_pg_schema.py``).

Every journal write goes through ``append``: it locks the run's row, checks in
SQL what the write expects (held under the writer's claim, still unfinished, a
wait still unanswered) and numbers the events as the SQLite writer does: ``seq``
counts up within a run, and an event without a position also follows every
earlier such event of any run. For that last rule writers of such events take
one advisory lock until they commit, so their seqs are also in commit order and
``changes_since`` can follow them with one cursor. A refused write returns why
(``refused``) and writes nothing; it does not raise, so it does not abort the
other writes of its batch.

``append_owned`` does the work of a batch of ``append`` calls whose writes are
all a runtime's own progress, in one call. Queue admission: ``admit``, and
``append_owned_admit`` (a run's end and the admission behind it, which hands its
slot on, commit together in one round trip).

Each function runs with ``enable_seqscan = off``: every statement in them finds
its rows by an index, but plpgsql plans a statement once for any parameters, and
for ``run_id = ANY($1)`` over a runs table of a few thousand rows the planner
takes a scan of the whole table as cheaper (0.4 ms a statement at 1,500 runs,
growing with the table, against microseconds by the primary key): in (g), 10,000
queued runs, that took queued runs/s from 1,900 to 2,200 and admission p50 from
4.2 to 3.4 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from durable.errors import RunNotFound
from durable.journal.records import (
    TERMINAL,
    Expect,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    WaitAnswered,
    claimed_since,
)

MESSAGE_LOCK = 7_213_931_000_001
"""The advisory lock held by transactions that append events without a position (the
function files spell it out: a test checks they agree)."""

QUEUE_LOCK = 7_213_931
"""With a hash of the schema and queue name, the advisory lock an admission to the queue
holds until it commits (in ``admit.sql``)."""

_TERMINAL = "('cancelled', 'completed', 'failed')"

RUN_COLUMNS = (
    "runs.run_id, workflow, version, status, run_inputs.input, input_digest, output, error,"
    " runs.owner, owners.lease_until, created_at, updated_at, parent_run_id, deadline,"
    " queue, priority, dedup_key, trace, runs.epoch"
)
"""A run as read, its input and its lease beside it: ``RunRecord``'s fields in order
(``admit.sql`` returns the same columns: change both)."""


_OWNED_AT_LEAST = 3


def owned(args: tuple[Any, ...]) -> bool:
    """Whether ``append_owned`` can take a write (``append_args``): an owner journaling
    its run's progress or its end, its events in positions, no reset or release."""
    _, claim, active, wait, _, _, _, _, _, reset, release, if_active = args[:12]
    return (
        claim is not None
        and active is None
        and wait is None
        and not reset
        and not release
        and if_active
        and None not in args[12]
    )


def owned_args(writes: Sequence[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """``append_owned``'s parameters for a batch of writes (but the batch marker), or
    None unless ``owned`` takes every one. Not for two writes or fewer (a sequential
    step's): a pipeline of two ``append`` calls costs less."""
    if len(writes) < _OWNED_AT_LEAST or not all(owned(write) for write in writes):
        return None
    ended: set[str] = set()
    for write in writes:
        if write[0] in ended:  # a write after the run's end: append refuses it
            return None
        if write[5] in TERMINAL:
            ended.add(write[0])
    event_writes: list[int] = []
    for number, write in enumerate(writes, start=1):
        event_writes += [number] * len(write[13])
    return (
        [write[1] for write in writes],
        [write[0] for write in writes],
        [write[4] for write in writes],
        [write[5] for write in writes],
        [write[8] for write in writes],
        [write[6] for write in writes],
        [write[7] for write in writes],
        event_writes,
        [position for write in writes for position in write[12]],
        [kind for write in writes for kind in write[13]],
        [name for write in writes for name in write[14]],
        [payload for write in writes for payload in write[15]],
        [created for write in writes for created in write[16]],
    )


def owned_rows(row: Any, writes: Sequence[tuple[Any, ...]]) -> list[tuple[Any, Any, Any]]:
    """``append_owned``'s answer as one ``append`` row per write."""
    refused, details, seqs = row
    rows: list[tuple[Any, Any, Any]] = []
    taken = 0
    for write, why, detail in zip(writes, refused, details, strict=True):
        if why is not None:
            rows.append((why, detail, []))
            continue
        count = len(write[13])
        rows.append((None, None, seqs[taken : taken + count]))
        taken += count
    return rows


def append_args(
    run_id: str,
    events: Sequence[NewEvent],
    update: RunUpdate | None,
    expect: Expect | None,
    claim: str | None,
) -> tuple[Any, ...]:
    u = update
    return (
        run_id,
        claim,
        None if expect is None else expect.active,
        None if expect is None else expect.pending_wait,
        u is not None,
        u and u.status,
        u and u.output,
        u and u.error,
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


def append_outcome(run_id: str, expect: Expect | None) -> Callable[[Any], list[int]]:
    """What an ``append`` row means: the new events' seqs, or the refusal to raise."""

    def finish(row: Any) -> list[int]:
        refused, detail, seqs = row
        if refused is not None:
            raise refusal(run_id, refused, detail, expect)
        return list(seqs)

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


def create_args(run: RunRecord, check_orphans: bool) -> tuple[Any, ...]:
    """One start's share of ``create_runs``' parameters."""
    return (
        run.run_id,
        run.workflow,
        run.version,
        run.status,
        run.input_digest,
        run.output,
        run.error,
        run.owner,
        run.created_at,
        run.updated_at,
        run.parent_run_id,
        run.deadline,
        run.queue,
        run.priority,
        run.dedup_key,
        run.trace,
        run.input,
        check_orphans,
    )


def create_group_args(starts: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """``create_runs``' parameters, but the batch marker: one array per column."""
    return tuple(list(column) for column in zip(*starts, strict=True))


def create_group_rows(row: Any, starts: Sequence[tuple[Any, ...]]) -> list[str]:
    return list(row[0])
