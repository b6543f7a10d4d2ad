"""Write jobs of the PostgreSQL store beyond the journal's functions: pruning,
superseding, sending a message once, cancelling a tree of runs, a start with a dedup
key, schedules. Each runs in the
writer's transaction (``writer.py``); ``s`` is the journal's quoted schema and
``append_sql`` the store's call of ``append``."""

from __future__ import annotations

from typing import Any

import asyncpg

from durable.errors import DuplicateInQueue
from durable.journal.kinds import CANCEL
from durable.journal.records import Expect, NewEvent, RunRecord, RunUpdate, ScheduleRecord
from durable.store.postgres.functions import (
    MESSAGE_LOCK,
    Write,
    append_args,
    append_outcome,
    start_outcome,
)
from durable.store.postgres.listing import _ACTIVE


async def prune(conn: asyncpg.Connection, *, s: str, ended_before: float, limit: int) -> int:
    """See ``Store.prune``."""
    # Under the lock that numbers events without a position: none is numbered
    # between reading the newest one pruned and keeping it in journal_marks.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MESSAGE_LOCK)
    rows = await conn.fetch(
        f"SELECT run_id FROM {s}.runs WHERE NOT ({_ACTIVE}) AND updated_at < $1"
        " ORDER BY created_at, run_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        ended_before,
        limit,
    )
    ids = [row[0] for row in rows]
    if not ids:
        return 0
    top = await conn.fetchval(
        f"SELECT max(seq) FROM {s}.events WHERE run_id = ANY($1::text[]) AND position IS NULL",
        ids,
    )
    if top is not None:
        await conn.execute(
            f"INSERT INTO {s}.journal_marks (name, value) VALUES ('unpositioned', $1)"
            " ON CONFLICT (name) DO UPDATE"
            " SET value = greatest(journal_marks.value, excluded.value)",
            top,
        )
    await conn.execute(f"DELETE FROM {s}.events WHERE run_id = ANY($1::text[])", ids)
    await conn.execute(f"DELETE FROM {s}.run_inputs WHERE run_id = ANY($1::text[])", ids)
    await conn.execute(f"DELETE FROM {s}.message_keys WHERE run_id = ANY($1::text[])", ids)
    await conn.execute(f"DELETE FROM {s}.runs WHERE run_id = ANY($1::text[])", ids)
    return len(ids)


async def supersede(
    conn: asyncpg.Connection,
    *,
    s: str,
    append_sql: str,
    run_id: str,
    position: int,
    args: Write,
) -> int:
    """See ``Store.supersede``."""
    status = await conn.execute(
        f"UPDATE {s}.events SET superseded = true"
        " WHERE run_id = $1 AND position >= $2 AND NOT superseded",
        run_id,
        position,
    )
    row = await conn.fetchrow(append_sql, *args, None, None, None)
    append_outcome(run_id, None, len(args.kinds))(row)
    return int(status.split()[-1])


async def send(
    conn: asyncpg.Connection,
    *,
    s: str,
    append_sql: str,
    message: NewEvent,
    expect: Expect,
    key: str | None,
) -> int | None:
    """See ``Store.send``."""
    args = append_args(message.run_id, [message], None, expect, None)
    async with conn.transaction():  # a savepoint: a refusal undoes the key too
        if key is not None and not await conn.fetchval(
            f"INSERT INTO {s}.message_keys (run_id, key, seq) VALUES ($1, $2, 0)"
            " ON CONFLICT DO NOTHING RETURNING true",
            message.run_id,
            key,
        ):
            return None
        row = await conn.fetchrow(append_sql, *args, None, None, None)
        (seq,) = append_outcome(message.run_id, expect, 1)(row)
        if key is not None:
            await conn.execute(
                f"UPDATE {s}.message_keys SET seq = $3 WHERE run_id = $1 AND key = $2",
                message.run_id,
                key,
                seq,
            )
        return int(seq)


async def cancel(
    conn: asyncpg.Connection,
    *,
    s: str,
    append_sql: str,
    run_id: str,
    now: float,
    error: str | None,
) -> list[str]:
    """See ``Store.cancel``: the run, then its unfinished descendants."""
    expect = Expect()

    def args(target: str, status: str, error: str | None, check: Expect | None) -> Any:
        cancelled = NewEvent(target, None, CANCEL, "cancel", "{}", now)
        update = RunUpdate(now, status=status, error=error)
        return append_args(target, [cancelled], update, check, None)

    status = "cancelled" if error is None else "failed"
    row = await conn.fetchrow(append_sql, *args(run_id, status, error, expect), None, None, None)
    append_outcome(run_id, expect, 1)(row)
    rows = await conn.fetch(
        f"WITH RECURSIVE tree (run_id) AS ("
        f" SELECT run_id FROM {s}.runs WHERE parent_run_id = $1"
        f" UNION SELECT runs.run_id FROM {s}.runs"
        f" JOIN tree ON runs.parent_run_id = tree.run_id)"
        f" SELECT runs.run_id FROM {s}.runs JOIN tree ON tree.run_id = runs.run_id"
        f" WHERE {_ACTIVE} ORDER BY runs.created_at, runs.run_id",
        run_id,
    )
    ids = [run_id]
    for (child,) in rows:
        row = await conn.fetchrow(
            append_sql, *args(child, "cancelled", None, None), None, None, None
        )
        if row["first_seq"] is not None:  # not ended meanwhile
            ids.append(child)
    return ids


async def create_deduplicated(
    conn: asyncpg.Connection, *, s: str, append_sql: str, run: RunRecord, args: Write
) -> bool:
    """A start with a dedup key, alone: another runtime may have queued the same key a
    moment ago, which the unique index refuses. True if it wrote the run."""
    await _refuse_duplicate(conn, s, run)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(append_sql, *args, None, None, None)
    except asyncpg.UniqueViolationError:
        await _refuse_duplicate(conn, s, run)
        raise
    return start_outcome(run.run_id)(row)


async def _refuse_duplicate(conn: asyncpg.Connection, s: str, run: RunRecord) -> None:
    """``DuplicateInQueue`` if an unfinished run of the queue has the run's dedup key."""
    other = await conn.fetchval(
        f"SELECT run_id FROM {s}.runs WHERE queue = $1 AND dedup_key = $2 AND run_id <> $3"
        f" AND {_ACTIVE}",
        run.queue,
        run.dedup_key,
        run.run_id,
    )
    if other is not None:
        raise DuplicateInQueue(run.queue or "", run.dedup_key or "", other)


async def see_schedule(
    conn: asyncpg.Connection, *, s: str, workflow: str, cron: str, tz: str, now: float
) -> ScheduleRecord:
    """See ``Store.see_schedule``."""
    row = await conn.fetchrow(
        f"INSERT INTO {s}.schedules (workflow, cron, tz, first_seen)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (workflow)"
        " DO UPDATE SET cron = excluded.cron, tz = excluded.tz"
        " RETURNING workflow, cron, tz, first_seen, last_tick",
        workflow,
        cron,
        tz,
        now,
    )
    return ScheduleRecord(*row)


async def note_tick(conn: asyncpg.Connection, *, s: str, workflow: str, tick: float) -> None:
    """See ``Store.note_tick``."""
    await conn.execute(
        f"UPDATE {s}.schedules SET last_tick = greatest(last_tick, $2) WHERE workflow = $1",
        workflow,
        tick,
    )
