"""Write jobs of the SQLite store beyond a run's own appends: creating a run, pruning,
superseding, sending a message once, cancelling a tree of runs, schedules. Each is a
function of the writer's connection, run in the writer's transaction (``writer.py``);
``memory`` is the store's ``JobMemory``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from durable.errors import DuplicateInQueue
from durable.journal.kinds import CANCEL, CHILD_ENDED, MESSAGE
from durable.journal.records import (
    TERMINAL,
    Expect,
    NewEvent,
    RunRecord,
    RunUpdate,
    ScheduleRecord,
    child_ended_payload,
    claim_of,
    orphaned_events,
)
from durable.store.sqlite.memory import JobMemory
from durable.store.sqlite.schema import _ACTIVE
from durable.store.sqlite.sql import (
    _DUPLICATE,
    _INSERT_INPUT,
    _INSERT_NEW_RUN,
    _INSERT_RUN,
    _KEY_KEEP,
    _KEY_SEEN,
    _ORPHANED_EVENTS,
    _RAISE_MARK,
    _RUN_READ,
    _SCHEDULE_READ,
    _UNFINISHED_DESCENDANTS,
    check_expected,
    run_record,
    update_sql,
)


def update_run(
    conn: sqlite3.Connection,
    memory: JobMemory,
    run_id: str,
    update: RunUpdate,
    claim: str | None = None,
) -> bool:
    """Apply ``update`` to the run's row (held under ``claim``, if given); False if no
    row matched. An update that ends a child run leaves its parent the message that
    says so."""
    sql, params = update_sql(run_id, update, claim)
    if update.status not in TERMINAL:
        return bool(conn.execute(sql, params).rowcount == 1)
    rows = conn.execute(sql + " RETURNING parent_run_id", params).fetchall()
    if not rows:
        return False
    parent = rows[0][0]
    if parent is not None:
        ended = child_ended_payload(update.status)
        message = NewEvent(parent, None, MESSAGE, CHILD_ENDED + run_id, ended, update.updated_at)
        memory.insert(conn, message)
    return True


def create_run(
    conn: sqlite3.Connection, *, memory: JobMemory, run: RunRecord, fresh_id: bool
) -> tuple[RunRecord, bool]:
    """See ``Store.create_run``."""
    if not fresh_id and conn.execute(_ORPHANED_EVENTS, (run.run_id, run.run_id)).fetchone():
        raise orphaned_events(run.run_id)
    values: list[Any] = [run.run_id, run.workflow, run.version, run.status]
    values += [run.input_digest, run.owner, run.created_at, run.updated_at]
    if run.dedup_key is not None:
        found = conn.execute(_DUPLICATE, (run.queue, run.dedup_key, run.run_id)).fetchone()
        if found is not None:
            raise DuplicateInQueue(run.queue or "", run.dedup_key, found[0])
    plain = run.parent_run_id is None and run.deadline is None and run.queue is None
    plain = plain and run.trace is None and run.output is None and run.error is None
    if plain and None not in values:
        cursor = conn.execute(_INSERT_NEW_RUN, values)
    else:  # leases live in the owners table
        values[5:5] = [run.output, run.error]
        values.insert(8, None)
        values += [run.parent_run_id, run.deadline, run.queue, run.priority, run.dedup_key]
        values.append(run.trace)
        cursor = conn.execute(_INSERT_RUN, values)
    if cursor.rowcount == 1:
        conn.execute(_INSERT_INPUT, (run.run_id, run.input))
        held = run.owner is not None and run.status not in TERMINAL
        memory.created(run.run_id, claim_of(run.owner, run.epoch) if run.owner and held else None)
        return run, True
    row = conn.execute(f"{_RUN_READ} WHERE runs.run_id = ?", (run.run_id,)).fetchone()
    return run_record(row), False


def prune(conn: sqlite3.Connection, *, memory: JobMemory, ended_before: float, limit: int) -> int:
    """See ``Store.prune``."""
    ids = [
        run_id
        for (run_id,) in conn.execute(
            f"SELECT run_id FROM runs WHERE NOT {_ACTIVE} AND updated_at < ?"
            " ORDER BY created_at, run_id LIMIT ?",
            (ended_before, limit),
        )
    ]
    if not ids:
        return 0
    marks = ",".join("?" * len(ids))
    (top,) = conn.execute(
        f"SELECT max(seq) FROM events WHERE run_id IN ({marks}) AND position IS NULL",
        ids,
    ).fetchone()
    if top is not None:
        conn.execute(_RAISE_MARK, ("unpositioned", top))
    conn.execute(f"DELETE FROM events WHERE run_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM run_inputs WHERE run_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM message_keys WHERE run_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", ids)
    for run_id in ids:
        memory.ended(run_id)
    return len(ids)


def supersede(
    conn: sqlite3.Connection,
    *,
    memory: JobMemory,
    run_id: str,
    position: int,
    update: RunUpdate,
    events: Sequence[NewEvent],
) -> int:
    """See ``Store.supersede``."""
    memory.held.pop(run_id, None)
    cursor = conn.execute(
        "UPDATE events SET superseded = 1 WHERE run_id = ? AND position >= ? AND superseded = 0",
        (run_id, position),
    )
    update_run(conn, memory, run_id, update)
    for event in events:
        memory.insert(conn, event)
    return cursor.rowcount


def send(
    conn: sqlite3.Connection,
    *,
    memory: JobMemory,
    message: NewEvent,
    expect: Expect,
    key: str | None,
) -> int | None:
    """See ``Store.send``."""
    if key is not None and conn.execute(_KEY_SEEN, (message.run_id, key)).fetchone():
        return None
    check_expected(conn, message.run_id, expect)
    seq = memory.insert(conn, message)
    if key is not None:
        conn.execute(_KEY_KEEP, (message.run_id, key, seq))
    return seq


def cancel(
    conn: sqlite3.Connection, *, memory: JobMemory, run_id: str, now: float, error: str | None
) -> list[str]:
    """See ``Store.cancel``."""
    check_expected(conn, run_id, Expect())
    ids = [run_id] + [row[0] for row in conn.execute(_UNFINISHED_DESCENDANTS, (run_id,))]
    for index, target in enumerate(ids):
        memory.held.pop(target, None)
        status = "failed" if error is not None and index == 0 else "cancelled"
        update = RunUpdate(now, status=status, error=error if index == 0 else None)
        if update_run(conn, memory, target, update):
            memory.insert(conn, NewEvent(target, None, CANCEL, "cancel", "{}", now))
            memory.ended(target)
    return ids


def see_schedule(
    conn: sqlite3.Connection, *, workflow: str, cron: str, tz: str, now: float
) -> ScheduleRecord:
    """See ``Store.see_schedule``."""
    conn.execute(
        "INSERT INTO schedules (workflow, cron, tz, first_seen) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (workflow) DO UPDATE SET cron = excluded.cron, tz = excluded.tz",
        (workflow, cron, tz, now),
    )
    row = conn.execute(_SCHEDULE_READ + " WHERE workflow = ?", (workflow,)).fetchone()
    return ScheduleRecord(*row)


def note_tick(conn: sqlite3.Connection, *, workflow: str, tick: float) -> None:
    """See ``Store.note_tick``."""
    conn.execute(
        "UPDATE schedules SET last_tick = max(coalesce(last_tick, ?), ?) WHERE workflow = ?",
        (tick, tick, workflow),
    )
