"""The PostgreSQL journal's hot path: a run's owner journaling its progress (a step's
end and the next step's start) with no change to the run's row.

Such a write is one call (``join_appends``) of one plain statement (``progress_sql``)
instead of the ``append`` function: the server does the same checks and inserts
without plpgsql's statement-by-statement execution and a second function for the
batch marker, 350 against 230 us a call on this project's machine (pgbench, median
of seven rounds; bench/NOTES.md). Its events go as one JSON document, not five
arrays: asyncpg encodes one text for less than five arrays of their elements.
Its rows are found by primary key (``run_id = $1``), so its generic plan uses the
indexes even when planned on an empty table, without the functions'
``enable_seqscan = off`` (checked with ``plan_cache_mode = force_generic_plan``).

The statement reads the run's last seq in its snapshot, taken before it waited for the
run's row: a concurrent writer of that run's events that commits while it waits makes
it pick a seq taken, and the primary key refuses the insert. The writer then does the
batch again with ``append``, whose statements each take a snapshot of their own
(``Committer._pipeline``): a conflict costs a second try, never a wrong seq.
"""

from __future__ import annotations

from typing import Any

import orjson

from durable.store.postgres.functions import _TERMINAL, owned, owned_rows


def progress_sql(schema: str) -> str:
    """The statement: ``progress_args`` and then ``finish_batch``'s writer and batch
    (a batch that notifies takes ``append``); it answers as ``append`` does."""
    s = f'"{schema}"'
    return f"""
WITH run AS MATERIALIZED (
    SELECT status, owner || '@' || epoch AS claim FROM {s}.runs
    WHERE run_id = $1::text FOR UPDATE),
last AS (SELECT coalesce(max(seq), 0) AS seq FROM {s}.events WHERE run_id = $1::text),
inserted AS (
    INSERT INTO {s}.events (run_id, seq, position, kind, name, payload, created_at)
    SELECT $1::text, last.seq + e.n, (e.event ->> 0)::integer, e.event ->> 1, e.event ->> 2,
        e.event ->> 3, (e.event ->> 4)::double precision
    FROM run, last, json_array_elements($3::json) WITH ORDINALITY AS e(event, n)
    WHERE run.claim = $2::text AND run.status NOT IN {_TERMINAL}
    RETURNING seq),
marked AS (
    INSERT INTO {s}.writers (writer, batch) SELECT $4::text, $5::bigint WHERE $4 IS NOT NULL
    ON CONFLICT (writer) DO UPDATE SET batch = excluded.batch)
SELECT CASE WHEN run.status IS NULL THEN 'deleted'
            WHEN run.claim IS DISTINCT FROM $2 THEN 'lease_lost'
            WHEN run.status IN {_TERMINAL} THEN 'ended' END,
       CASE WHEN run.status IS NULL THEN NULL
            WHEN run.claim IS DISTINCT FROM $2 THEN run.claim
            WHEN run.status IN {_TERMINAL} THEN run.status END,
       ARRAY(SELECT seq FROM inserted ORDER BY seq)
FROM (SELECT) AS one LEFT JOIN run ON true
"""


def progress_args(write: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The statement's parameters for an ``append`` write (``append_args``), but the
    batch marker; None unless it is an owner's events in positions, expecting nothing
    but the lease and changing nothing in the run's row."""
    if write[4] or not owned(write):  # a change to the row, or not only the owner's
        return None
    events = zip(write[12], write[13], write[14], write[15], write[16], strict=True)
    return (write[0], write[1], orjson.dumps(list(events)).decode())


def join_appends(writes: list[tuple[Any, ...]]) -> list[tuple[tuple[Any, ...], int]]:
    """Adjacent ``append`` writes of one run by its owner, all but the last without a
    change to the run's row, as one call: a step's end and the next step's start, one
    call instead of two. (The call changes the row before it adds the events; with no
    change before the last write, that is the order the writes came in.)"""
    joined: list[tuple[tuple[Any, ...], int]] = []
    for write in writes:
        if joined and _joins(joined[-1][0], write):
            last, count = joined[-1]
            events = tuple(last[i] + write[i] for i in range(12, 17))
            joined[-1] = (write[:12] + events, count + 1)
        else:
            joined.append((write, 1))
    return joined


def _joins(before: tuple[Any, ...], write: tuple[Any, ...]) -> bool:
    return (
        before[0] == write[0]
        and before[1] is not None
        and before[1] == write[1]
        and before[2] is None
        and before[3] is None
        and write[2] is None
        and write[3] is None
        and not before[4]
    )


def split_append(row: Any, writes: list[tuple[Any, ...]]) -> list[tuple[Any, Any, Any]]:
    """A joined call's row as the row of each write it did."""
    refused, detail, seqs = row
    return owned_rows(([refused] * len(writes), [detail] * len(writes), seqs), writes)
