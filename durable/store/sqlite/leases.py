"""Leases on SQLite: claiming free runs, renewing a runtime's lease, letting runs go.

Write jobs for the store's writer, each run in one transaction under the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from durable.journal.records import Admitted, QueueLimits, RunRecord, claim_of, executes_digest
from durable.store.sqlite.memory import JobMemory
from durable.store.sqlite.schema import _ACTIVE
from durable.store.sqlite.sql import (
    _ADMITTED_SINCE,
    _ANY_QUEUED,
    _IN_QUEUE,
    _RUN_FROM,
    _RUN_SELECT,
    hold_lease,
    run_record,
)


def claim(
    conn: sqlite3.Connection,
    *,
    memory: JobMemory,
    owner: str,
    lease_until: float,
    now: float,
    limit: int,
    dead: set[str],
    run_ids: Sequence[str] | None,
    workflows: Sequence[tuple[str, str]] | None,
    include_own: bool,
    skip: Sequence[str],
) -> list[RunRecord]:
    """See ``Store.claim``."""
    executes = executes_digest(workflows)
    hold_lease(conn, owner, lease_until, executes)
    conn.execute("DELETE FROM owners WHERE lease_until < ?", (now,))  # lapsed: no claim
    # Peers: the runtimes that execute the same workflows (or did not say).
    others = conn.execute(
        "SELECT owner FROM owners WHERE owner != ?1"
        " AND (?2 IS NULL OR executes IS NULL OR executes = ?2)",
        (owner, executes),
    )
    live = [row[0] for row in others.fetchall() if row[0] not in dead] + [owner]
    of_ours, of_ours_params = _of_workflows(workflows)
    sql, params = _claimable(owner, live, include_own, run_ids, skip)
    found = conn.execute(sql + of_ours, [*params, *of_ours_params]).fetchall()
    free = [row for row in found if row[8] != owner]
    room = min(limit, _share(conn, owner, live, len(free), of_ours, of_ours_params))
    kept = [row for row in found if row[8] == owner] + free[: max(room, 0)]
    return _take(conn, memory, owner, kept)


def _claimable(
    owner: str,
    live: list[str],
    include_own: bool,
    run_ids: Sequence[str] | None,
    skip: Sequence[str],
) -> tuple[str, list[Any]]:
    """The query for the unfinished, unqueued runs ``owner`` may claim: free, or its own
    if ``include_own``; with each run its last seq (what the writer's first append would
    look up)."""
    last_seq = "(SELECT max(seq) FROM events WHERE events.run_id = runs.run_id)"
    sql = f"{_RUN_SELECT}, {last_seq}{_RUN_FROM} WHERE {_ACTIVE} AND status != 'queued'"
    sql += f" AND (runs.owner IS NULL OR runs.owner NOT IN ({','.join('?' * len(live))})"
    sql += " OR runs.owner = ?)" if include_own else ")"
    params: list[Any] = live + ([owner] if include_own else [])
    if run_ids is not None:
        sql += f" AND runs.run_id IN ({','.join('?' * len(run_ids))})"
        params.extend(run_ids)
    if skip:
        sql += " AND runs.run_id NOT IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(list(skip)).decode())
    return sql, params


def _take(
    conn: sqlite3.Connection, memory: JobMemory, owner: str, kept: list[Any]
) -> list[RunRecord]:
    """Claim the runs of ``kept`` for ``owner``, each in a new epoch. A run of a queue that
    another runtime (or none) held goes back to its queue instead: its slot is given
    back, and its queue admits it again under its limits."""
    requeued = {row[0] for row in kept if row[8] != owner and row[14] is not None}
    conn.executemany(
        "UPDATE runs SET status = 'queued', owner = NULL, admitted_at = NULL WHERE run_id = ?",
        [(run_id,) for run_id in requeued],
    )
    found = [row for row in kept if row[0] not in requeued]
    conn.executemany(
        "UPDATE runs SET owner = ?, epoch = epoch + 1 WHERE run_id = ?",
        [(owner, row[0]) for row in found],
    )
    rows = []
    for row in found:
        record = run_record(row[:-1])
        record.epoch += 1
        memory.claimed(record.run_id, claim_of(owner, record.epoch), row[-1] or 0)
        rows.append(record)
    return rows


def _of_workflows(workflows: Sequence[tuple[str, str]] | None) -> tuple[str, list[str]]:
    if workflows is None:
        return "", []
    pairs = ",".join(["(?,?)"] * len(workflows))
    sql = f" AND (workflow, coalesce(version, '1')) IN (VALUES {pairs})"
    return sql, [part for pair in workflows for part in pair]


def _share(
    conn: sqlite3.Connection,
    owner: str,
    live: list[str],
    free: int,
    of_ours: str,
    params: list[str],
) -> int:
    """How many free runs ``owner`` may take: what brings it to its fair share of the
    runs held by live runtimes and the free ones, divided by those runtimes."""
    held, mine = conn.execute(
        f"SELECT count(*), coalesce(sum(owner = ?), 0) FROM runs WHERE {_ACTIVE}"
        f" AND status != 'queued' AND owner IN ({','.join('?' * len(live))}){of_ours}",
        [owner, *live, *params],
    ).fetchone()
    return max(0, -(-(free + int(held)) // len(live)) - int(mine))


def renew(owner: str, lease_until: float, now: float, conn: sqlite3.Connection) -> set[str] | None:
    """See ``Store.renew``."""
    row = conn.execute("SELECT lease_until FROM owners WHERE owner = ?", (owner,)).fetchone()
    hold_lease(conn, owner, lease_until)
    if row is not None and row[0] >= now:
        return None  # the lease never lapsed, so no run can have been taken
    held = conn.execute(
        f"SELECT run_id FROM runs WHERE owner = ? AND {_ACTIVE}", (owner,)
    ).fetchall()
    return {run_id for (run_id,) in held}


def release(owner: str, run_ids: Sequence[str], conn: sqlite3.Connection) -> None:
    """See ``Store.release``."""
    # Runs whose owner holds no lease are free: one row, however many runs.
    conn.execute("DELETE FROM owners WHERE owner = ?", (owner,))
    conn.executemany(
        "UPDATE runs SET owner = NULL WHERE run_id = ? AND owner = ?",
        [(run_id, owner) for run_id in run_ids],
    )


def admit(
    conn: sqlite3.Connection,
    *,
    memory: JobMemory,
    owner: str,
    lease_until: float,
    now: float,
    queues: Sequence[QueueLimits],
    limit: int,
    workflows: Sequence[tuple[str, str]] | None,
) -> Admitted:
    """See ``Store.admit``: under SQLite's write lock, so no other admission interleaves."""
    hold_lease(conn, owner, lease_until)
    taken: list[RunRecord] = []
    fresh: set[str] = set()
    retry_at: float | None = None
    for queue in queues:
        # Most admissions, started by any change at all, find no run waiting: then they
        # count nothing. (The index named: the planner would read every run of the
        # queue through runs_in_queue.)
        if conn.execute(_ANY_QUEUED, (queue.name,)).fetchone() is None:
            continue
        room, window_ends = _room(conn, queue, owner, now, limit - len(taken))
        if room <= 0 and window_ends is None:
            continue
        rows = _queued(conn, queue.name, workflows, max(room, 0) + 1)
        if window_ends is not None and len(rows) > max(room, 0):
            retry_at = window_ends if retry_at is None else min(retry_at, window_ends)
        for record, has_journal in _let_in(conn, owner, now, rows[: max(room, 0)]):
            claim = claim_of(owner, record.epoch)
            if has_journal:
                memory.held[record.run_id] = claim
            else:
                memory.claimed(record.run_id, claim, 0)
                fresh.add(record.run_id)
            taken.append(record)
    return Admitted(taken, retry_at, frozenset(fresh))


def _room(
    conn: sqlite3.Connection, queue: QueueLimits, owner: str, now: float, room: int
) -> tuple[int, float | None]:
    """How many runs ``queue``'s limits let in now (at most ``room``), and, when its rate
    is what binds, when its window lets one more in."""
    if queue.concurrency is not None:
        (running,) = conn.execute(_IN_QUEUE, (queue.name,)).fetchone()
        room = min(room, queue.concurrency - running)
    if queue.per_runtime is not None:
        (mine,) = conn.execute(_IN_QUEUE + " AND owner = ?", (queue.name, owner)).fetchone()
        room = min(room, queue.per_runtime - mine)
    if queue.rate is not None:
        count, seconds = queue.rate
        started, oldest = conn.execute(_ADMITTED_SINCE, (queue.name, now - seconds)).fetchone()
        if count - started <= room:
            return count - started, (now if oldest is None else float(oldest)) + seconds
    return room, None


def _queued(
    conn: sqlite3.Connection, queue: str, workflows: Sequence[tuple[str, str]] | None, limit: int
) -> list[Any]:
    """The first ``limit`` queued runs of ``queue`` (of ``workflows``), in admission order,
    each with whether it has a journal (one that never ran needs no reading)."""
    sql = (
        f"{_RUN_SELECT}, EXISTS (SELECT 1 FROM events WHERE events.run_id = runs.run_id)"
        f"{_RUN_FROM} WHERE queue = ? AND status = 'queued'"
    )
    of_ours, params = _of_workflows(workflows)
    sql += of_ours + " ORDER BY priority, created_at, runs.run_id LIMIT ?"
    return conn.execute(sql, [queue, *params, limit]).fetchall()


def _let_in(
    conn: sqlite3.Connection, owner: str, now: float, rows: list[Any]
) -> list[tuple[RunRecord, bool]]:
    """Admit ``rows`` for ``owner``, each in a new epoch: the records, and whether each run
    has a journal."""
    conn.executemany(
        "UPDATE runs SET status = 'pending', owner = ?, admitted_at = ?,"
        " epoch = epoch + 1 WHERE run_id = ?",
        [(owner, now, row[0]) for row in rows],
    )
    admitted = []
    for row in rows:
        record = run_record(row[:-1])
        record.status, record.owner, record.epoch = "pending", owner, record.epoch + 1
        admitted.append((record, bool(row[-1])))
    return admitted
