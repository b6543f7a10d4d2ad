"""Leases on SQLite: claiming free runs, renewing a runtime's lease, letting runs go.

Write jobs for the store's writer, each run in one transaction under the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ._memory import JobMemory
from ._sqlite_schema import _ACTIVE
from ._sqlite_sql import _RUN_FROM, _RUN_SELECT, hold_lease, run_record
from .base import RunRecord


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
) -> list[RunRecord]:
    """See ``Store.claim``."""
    hold_lease(conn, owner, lease_until)
    conn.execute("DELETE FROM owners WHERE lease_until < ?", (now,))  # lapsed: no claim
    others = conn.execute("SELECT owner FROM owners WHERE owner != ?", (owner,))
    holding = [row[0] for row in others.fetchall() if row[0] not in dead]
    # With each run its last seq: what the writer's first append would look up.
    last_seq = "(SELECT max(seq) FROM events WHERE events.run_id = runs.run_id)"
    sql = f"{_RUN_SELECT}, {last_seq}{_RUN_FROM} WHERE {_ACTIVE}"
    params: list[Any] = []
    if holding:
        marks = ",".join("?" * len(holding))
        sql += f" AND (runs.owner IS NULL OR runs.owner NOT IN ({marks}))"
        params.extend(holding)
    if not include_own:
        sql += " AND (runs.owner IS NULL OR runs.owner != ?)"
        params.append(owner)
    if run_ids is not None:
        sql += f" AND runs.run_id IN ({','.join('?' * len(run_ids))})"
        params.extend(run_ids)
    if workflows is not None:
        pairs = ",".join(["(?,?)"] * len(workflows))
        sql += f" AND (workflow, coalesce(version, '1')) IN (VALUES {pairs})"
        params.extend(part for pair in workflows for part in pair)
    found = conn.execute(sql, params).fetchall()
    # Ours are always taken; of the free ones, a fair share among live runtimes.
    share = -(-sum(1 for row in found if row[8] != owner) // (len(holding) + 1))
    room = min(limit, share)
    kept = []
    for row in found:
        if row[8] == owner:
            kept.append(row)
        elif room > 0:
            kept.append(row)
            room -= 1
    found = kept
    rows = [run_record(row[:-1]) for row in found]
    conn.executemany(
        "UPDATE runs SET owner = ? WHERE run_id = ?",
        [(owner, run.run_id) for run in rows if run.owner != owner],  # others' only
    )
    for row in found:
        memory.claimed(row[0], owner, row[-1] or 0)
    return rows


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
