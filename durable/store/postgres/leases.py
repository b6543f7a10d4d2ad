"""Leases on PostgreSQL: claiming free runs, renewing a runtime's lease, letting runs go.

Write jobs for the store's writer, each in one transaction. Free runs are
claimed with ``FOR UPDATE SKIP LOCKED``, so runtimes claiming together never
wait for each other nor take the same run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from durable.journal.records import Admitted, QueueLimits, RunRecord, executes_digest
from durable.store.postgres.listing import _ACTIVE


def run_record(row: Any) -> RunRecord:
    return RunRecord(*row[:19])


async def claim(
    conn: asyncpg.Connection,
    *,
    s: str,
    runs_sql: Callable[[str], str],
    owner: str,
    lease_until: float,
    now: float,
    limit: int,
    dead_owners: Sequence[str],
    run_ids: Sequence[str] | None,
    workflows: Sequence[tuple[str, str]] | None,
    include_own: bool,
    skip: Sequence[str],
) -> list[RunRecord]:
    """See ``Store.claim``; ``s`` is the quoted schema, ``runs_sql`` the store's read."""
    live = await _peers(conn, s, owner, lease_until, now, workflows, dead_owners)
    params: list[Any] = [owner, live]
    where = [_ACTIVE, "status <> 'queued'"]
    if workflows is not None:
        params += [[name for name, _ in workflows], [version for _, version in workflows]]
        where.append(
            f"(workflow, coalesce(version, '1')) IN"
            f" (SELECT * FROM unnest(${len(params) - 1}::text[], ${len(params)}::text[]))"
        )
    of_ours = " AND ".join(where)
    held, mine = await conn.fetchrow(
        f"SELECT count(*), count(*) FILTER (WHERE owner = $1) FROM {s}.runs"
        f" WHERE {of_ours} AND owner = ANY($2::text[])",
        *params,
    )
    if run_ids is not None:
        params.append(list(run_ids))
        where.append(f"runs.run_id = ANY(${len(params)}::text[])")
    if skip:
        params.append(list(skip))
        where.append(f"NOT runs.run_id = ANY(${len(params)}::text[])")
    common = " AND ".join(where)
    free = f"{common} AND (runs.owner IS NULL OR NOT runs.owner = ANY($2::text[]))"
    free += " AND runs.owner IS DISTINCT FROM $1"  # ($2 holds it; $1 needs a use)
    count = await conn.fetchval(f"SELECT count(*) FROM {s}.runs WHERE {free}", *params)
    share = min(limit, math.ceil((count + held) / len(live)) - mine)
    rows = []
    if include_own:
        rows += await conn.fetch(
            runs_sql(f"{common} AND runs.owner = $1 AND $2::text[] IS NOT NULL")
            + " FOR UPDATE OF runs",  # as it is when the epoch is bumped below
            *params,
        )
    if share > 0:
        rows += await _take_free(conn, s, runs_sql(free), params, share)
    return await _claimed(conn, s, owner, rows)


async def _peers(
    conn: asyncpg.Connection,
    s: str,
    owner: str,
    lease_until: float,
    now: float,
    workflows: Sequence[tuple[str, str]] | None,
    dead_owners: Sequence[str],
) -> list[str]:
    """Hold ``owner``'s lease and forget lapsed ones; the live runtimes that execute the
    same workflows (or did not say), ``owner`` last."""
    executes = executes_digest(workflows)
    await hold_lease(conn, s, owner, lease_until, executes)
    await conn.execute(f"DELETE FROM {s}.owners WHERE lease_until < $1", now)
    others = await conn.fetch(
        f"SELECT owner FROM {s}.owners WHERE owner <> $1"
        " AND ($2::text IS NULL OR executes IS NULL OR executes = $2)",
        owner,
        executes,
    )
    return [row[0] for row in others if row[0] not in dead_owners] + [owner]


async def _take_free(
    conn: asyncpg.Connection, s: str, sql: str, params: list[Any], share: int
) -> list[Any]:
    """Up to ``share`` free runs (``sql`` reads them), locked. A run of a queue held by
    another runtime (or none) goes back to its queue instead: its slot is given back,
    and its queue admits it again under its limits."""
    taken = await conn.fetch(
        sql + f" ORDER BY created_at LIMIT ${len(params) + 1} FOR UPDATE OF runs SKIP LOCKED",
        *params,
        share,
    )
    await conn.execute(
        f"UPDATE {s}.runs SET status = 'queued', owner = NULL, admitted_at = NULL"
        " WHERE run_id = ANY($1::text[])",
        [row["run_id"] for row in taken if row["queue"] is not None],
    )
    return [row for row in taken if row["queue"] is None]


async def _claimed(
    conn: asyncpg.Connection, s: str, owner: str, rows: list[Any]
) -> list[RunRecord]:
    """The runs read as ``rows``, now ``owner``'s, each in a new epoch."""
    epochs = dict(
        await conn.fetch(
            f"UPDATE {s}.runs SET owner = $1, epoch = epoch + 1"
            " WHERE run_id = ANY($2::text[]) RETURNING run_id, epoch",
            owner,
            [row[0] for row in rows],
        )
    )
    records = [run_record(row) for row in rows]
    for record in records:
        record.epoch = epochs[record.run_id]
    return records


def admit_args(
    s: str,
    owner: str,
    now: float,
    queues: Sequence[QueueLimits],
    limit: int,
    workflows: Sequence[tuple[str, str]] | None,
) -> tuple[Any, ...]:
    """The parameters of the schema's ``admit`` function (see
    ``Store.admit``). Each queue's admissions take an advisory lock on the queue until
    they commit: counting the runs that hold its slots and taking the next ones must be
    one step for every runtime, and a row lock cannot cover runs that do not exist yet
    nor a count. The queued runs are taken ``FOR UPDATE SKIP LOCKED``. One call, in the
    writer's batch: the lock is held until the batch commits. (The admitting runtime
    holds a lease already: its renewal is the lease's job.)"""
    return (
        owner,
        now,
        limit,
        [queue.name for queue in queues],
        [f"{s}.{queue.name}" for queue in queues],
        [queue.concurrency for queue in queues],
        [queue.per_runtime for queue in queues],
        [queue.rate[0] if queue.rate else None for queue in queues],
        [float(queue.rate[1]) if queue.rate else None for queue in queues],
        None if workflows is None else [name for name, _ in workflows],
        None if workflows is None else [version for _, version in workflows],
    )


async def admit(conn: asyncpg.Connection, *, sql: str, args: tuple[Any, ...]) -> Admitted:
    """Call ``admit`` (``sql``) with ``admit_args``: the runs it took, as ``Admitted``."""
    rows = await conn.fetch(sql, *args)
    taken = [row for row in rows if row["o_run_id"] is not None]
    fresh = frozenset(row["o_run_id"] for row in taken if row["o_fresh"])
    return Admitted([run_record(row[2:]) for row in taken], rows[0]["o_retry_at"], fresh)


async def renew(
    conn: asyncpg.Connection, *, s: str, owner: str, lease_until: float, now: float
) -> set[str] | None:
    """See ``Store.renew``."""
    before = await conn.fetchval(f"SELECT lease_until FROM {s}.owners WHERE owner = $1", owner)
    await hold_lease(conn, s, owner, lease_until)
    if before is not None and before >= now:
        return None
    held = await conn.fetch(f"SELECT run_id FROM {s}.runs WHERE owner = $1 AND {_ACTIVE}", owner)
    return {row[0] for row in held}


async def release(conn: asyncpg.Connection, *, s: str, owner: str, run_ids: Sequence[str]) -> None:
    """See ``Store.release``."""
    await conn.execute(f"DELETE FROM {s}.owners WHERE owner = $1", owner)
    await conn.execute(
        f"UPDATE {s}.runs SET owner = NULL WHERE run_id = ANY($1::text[]) AND owner = $2",
        list(run_ids),
        owner,
    )


async def hold_lease(
    conn: asyncpg.Connection, s: str, owner: str, lease_until: float, executes: str | None = None
) -> None:
    """Hold ``owner``'s lease until ``lease_until``; ``executes`` (``executes_digest``)
    is kept from the claim that last said it."""
    await conn.execute(
        f"INSERT INTO {s}.owners AS o (owner, lease_until, executes) VALUES ($1, $2, $3)"
        " ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until,"
        " executes = coalesce(excluded.executes, o.executes)",
        owner,
        lease_until,
        executes,
    )
