"""The SQL of the SQLite store: statements, and the small checks its write jobs share.

Every function here runs inside a write job, under the writer's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from durable.errors import RunNotFound
from durable.journal.records import (
    TERMINAL,
    EventRecord,
    Expect,
    LeaseLost,
    RunEnded,
    RunRecord,
    RunUpdate,
    WaitAnswered,
    claimed_since,
)
from durable.store.ports import RunFilter
from durable.store.sqlite.schema import _ACTIVE

_RUN_COLUMNS = (
    "run_id, workflow, version, status, input_digest, output, error,"
    " owner, lease_until, created_at, updated_at, parent_run_id, deadline,"
    " queue, priority, dedup_key, trace"
)
_INSERT_RUN = (
    f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# OR REPLACE: the input of a run whose row was deleted by hand may still be there.
_INSERT_INPUT = "INSERT OR REPLACE INTO run_inputs (run_id, input) VALUES (?, ?)"
# A new run has no output, error or lease yet: NULL in the SQL, not bound, since the
# sqlite3 module binds None through its adapter lookup, which raises and discards an
# AttributeError for each (6k instructions per run).
_ORPHANED_EVENTS = (
    "SELECT 1 FROM events WHERE run_id = ? AND NOT EXISTS"
    " (SELECT 1 FROM runs WHERE run_id = ?) LIMIT 1"
)
_INSERT_NEW_RUN = (
    f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS})"
    " VALUES (?,?,?,?,?,NULL,NULL,?,NULL,?,?,NULL,NULL,NULL,0,NULL,NULL)"
)
_RAISE_MARK = (
    "INSERT INTO journal_marks (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)"
)
# A run as read: its input beside it, its lease its owner's.
_RUN_SELECT = (
    "SELECT runs.run_id, workflow, version, status, run_inputs.input, input_digest, output,"
    " error, runs.owner, owners.lease_until, created_at, updated_at, parent_run_id, deadline,"
    " queue, priority, dedup_key, trace, epoch"
)
_RUN_FROM = (
    " FROM runs JOIN run_inputs ON run_inputs.run_id = runs.run_id"
    " LEFT JOIN owners ON owners.owner = runs.owner"
)
_RUN_READ = _RUN_SELECT + _RUN_FROM
_RUN_COUNTS = "SELECT workflow, status, count(*) FROM runs GROUP BY workflow, status"
_EVENT_COLUMNS = "seq, run_id, position, kind, name, payload, created_at, superseded"
# Whether the run's wait ?2 (a wait_for_user's, of one position) is unanswered: it was
# journaled (not superseded), nothing completed it, and no message of its name is in the
# journal: with the wait not completed, none was consumed (Expect). No payload is read.
# The kinds are _journal.py's.
_WAIT_PENDING = """
SELECT EXISTS (
    SELECT 1 FROM events s WHERE s.run_id = ?1 AND s.kind = 'wait.started'
    AND s.name = ?2 AND s.superseded = 0 AND NOT EXISTS (
        SELECT 1 FROM events c WHERE c.run_id = ?1 AND c.position = s.position
        AND c.kind = 'wait.completed' AND c.superseded = 0))
AND NOT EXISTS (
    SELECT 1 FROM events m WHERE m.run_id = ?1 AND m.kind = 'message' AND m.name = ?2)
"""
_KEY_SEEN = "SELECT 1 FROM message_keys WHERE run_id = ? AND key = ?"
_KEY_KEEP = "INSERT INTO message_keys (run_id, key, seq) VALUES (?, ?, ?)"
_UNFINISHED_DESCENDANTS = f"""
WITH RECURSIVE tree (run_id) AS (
    SELECT run_id FROM runs WHERE parent_run_id = ?
    UNION SELECT runs.run_id FROM runs JOIN tree ON runs.parent_run_id = tree.run_id
)
SELECT runs.run_id FROM runs JOIN tree ON tree.run_id = runs.run_id WHERE {_ACTIVE}
ORDER BY runs.created_at, runs.run_id
"""
RUN_TREE = """
WITH RECURSIVE tree (run_id, parent_run_id) AS (
    SELECT run_id, NULL FROM runs WHERE run_id = ?
    UNION SELECT runs.run_id, runs.parent_run_id FROM runs
        JOIN tree ON runs.parent_run_id = tree.run_id
)
SELECT run_id, parent_run_id FROM tree
"""
EVENTS_OF = f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id IN"
SPEND_OF = f"SELECT {_EVENT_COLUMNS} FROM events INDEXED BY events_spend WHERE"
"""A run's spend through its partial index, not the rest of the journal (stream values may
number thousands), whatever the planner guesses without statistics."""
SPEND_TAIL = "AND kind IN ('budget.charged', 'budget.raised') ORDER BY run_id, seq"
"""The kinds spelled as the partial index ``events_spend`` has them (a query can use
that index only when it says the same)."""
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
WAL_AUTOCHECKPOINT = 10_000


def run_record(row: Sequence[Any]) -> RunRecord:
    return RunRecord(*row)


def event_record(row: Sequence[Any]) -> EventRecord:
    seq, run_id, position, kind, name, payload, created_at, superseded = row
    return EventRecord(seq, run_id, position, kind, name, payload, created_at, bool(superseded))


def hold_lease(
    conn: sqlite3.Connection, owner: str, lease_until: float, executes: str | None = None
) -> None:
    """Hold ``owner``'s lease until ``lease_until``; ``executes`` (``executes_digest``)
    is kept from the claim that last said it."""
    conn.execute(
        "INSERT INTO owners (owner, lease_until, executes) VALUES (?, ?, ?)"
        " ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until,"
        " executes = coalesce(excluded.executes, owners.executes)",
        (owner, lease_until, executes),
    )


CLAIM = "(runs.owner || '@' || runs.epoch)"
"""The claim a run is held under, as ``claim_of`` spells it."""


def update_sql(run_id: str, update: RunUpdate, claim: str | None) -> tuple[str, list[object]]:
    sets: list[str] = ["updated_at = ?"]
    params: list[object] = [update.updated_at]
    if update.reset_result:
        sets.append("output = NULL, error = NULL")
    if update.release:
        sets.append("owner = NULL, lease_until = NULL")
    for column in ("status", "output", "error"):
        value = getattr(update, column)
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    sql = f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?"
    params.append(run_id)
    if claim is not None:
        sql += f" AND {CLAIM} = ?"
        params.append(claim)
    if update.only_if_active:
        sql += f" AND {_ACTIVE}"
    return sql, params


def owned_status(conn: sqlite3.Connection, run_id: str, claim: str) -> str:
    """The run's status, or LeaseLost if it is not held under ``claim`` any more."""
    row = conn.execute(f"SELECT {CLAIM}, status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise LeaseLost(f"run {run_id!r} was deleted from the runs table", deleted=True)
    if row[0] != claim:
        raise LeaseLost(claimed_since(run_id, row[0]))
    return str(row[1])


def check_expected(conn: sqlite3.Connection, run_id: str, expect: Expect) -> None:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    if expect.active and row[0] in TERMINAL:
        raise RunEnded(run_id, row[0])
    if expect.pending_wait is not None:
        (pending,) = conn.execute(_WAIT_PENDING, (run_id, expect.pending_wait)).fetchone()
        if not pending:
            raise WaitAnswered(f"wait {expect.pending_wait!r} of run {run_id!r} was answered")


_DUPLICATE = (
    f"SELECT run_id FROM runs WHERE queue = ? AND dedup_key = ? AND run_id != ? AND {_ACTIVE}"
)
# Runs of a queue that hold a slot: admitted (not queued) and not ended.
_IN_QUEUE = (
    "SELECT count(*) FROM runs WHERE queue = ? AND queue IS NOT NULL AND status != 'queued'"
    f" AND {_ACTIVE}"
)
_QUEUED = "SELECT count(*) FROM runs WHERE queue = ? AND status = 'queued'"
_ANY_QUEUED = (
    "SELECT 1 FROM runs INDEXED BY runs_queued WHERE queue = ? AND status = 'queued' LIMIT 1"
)
_ADMITTED_SINCE = "SELECT count(*), min(admitted_at) FROM runs WHERE queue = ? AND admitted_at > ?"
_SCHEDULE_READ = "SELECT workflow, cron, tz, first_seen, last_tick FROM schedules"


def runs_where(found: RunFilter) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause of a listing of runs (empty: all) and its parameters."""
    clauses: list[str] = [_ACTIVE] if found.unfinished else []
    params: list[Any] = []
    if found.parent is not None:
        clauses.append("parent_run_id = ?")
        params.append(found.parent)
    if found.after is not None:
        clauses.append("(created_at < ? OR (created_at = ? AND runs.run_id > ?))")
        params += [found.after[0], found.after[0], found.after[1]]
    if found.since is not None:
        clauses.append("created_at >= ?")
        params.append(found.since)
    if found.until is not None:
        clauses.append("created_at < ?")
        params.append(found.until)
    if found.id_contains is not None:
        clauses.append("instr(runs.run_id, ?) > 0")
        params.append(found.id_contains)
    if found.id_prefix is not None:
        clauses.append("substr(runs.run_id, 1, length(?)) = ?")
        params += [found.id_prefix, found.id_prefix]
    if found.status is not None:
        clauses.append("status = ?")
        params.append(found.status)
        if found.status not in TERMINAL:
            clauses.append(_ACTIVE)  # lets SQLite read the runs_active index
    if found.workflow is not None:
        clauses.append("workflow = ?")
        params.append(found.workflow)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
