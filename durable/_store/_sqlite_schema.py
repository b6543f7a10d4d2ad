"""The SQLite journal file: its path checked, its schema and migrations.

The version is SQLite's ``user_version``; a journal written by a newer
durable is refused before anything, even WAL mode, changes the file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..errors import DurableError
from .base import TERMINAL

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    version      TEXT,
    status       TEXT NOT NULL,
    input        TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    output       TEXT,
    error        TEXT,
    owner        TEXT,
    lease_until  REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, workflow);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    run_id     TEXT NOT NULL,
    position   INTEGER,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq);
CREATE INDEX IF NOT EXISTS events_unpositioned ON events (seq) WHERE position IS NULL;
"""

# Unfinished runs. Spelled as comparisons, not NOT IN: SQLite builds a temporary B-tree
# for an IN list each time it evaluates one, on every insert or update of a run (the
# runs_active index's condition) and in every owned update (a tenth of a one-step
# workflow's instructions).
_ACTIVE = "(" + " AND ".join(f"status != '{status}'" for status in sorted(TERMINAL)) + ")"

# Each step takes a journal from the version before it to its own; a new
# journal runs them all. Never edit a released step: add one.
_MIGRATIONS: list[tuple[int, str]] = [
    (1, _SCHEMA_V1),
    # Unfinished runs by owner and lease: what claiming and lease renewal look up.
    (
        2,
        "CREATE INDEX IF NOT EXISTS runs_active ON runs (owner, lease_until)"
        " WHERE status NOT IN ('cancelled', 'completed', 'failed')",
    ),
    # Every status change moved an entry of this index: two or three more pages per
    # commit. Listing by an unfinished status uses runs_active instead; listing by a
    # finished one scans, as sorting by creation time needed anyway.
    (3, "DROP INDEX IF EXISTS runs_by_status"),
    # One lease per runtime instead of one per run: renewing rewrote every unfinished
    # run's row, half a second of the writer every five at 100,000 runs.
    # runs.lease_until is no longer written; reads take the owner's lease.
    (
        4,
        """
        CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, lease_until REAL NOT NULL);
        INSERT OR IGNORE INTO owners (owner, lease_until)
            SELECT owner, max(lease_until) FROM runs
            WHERE owner IS NOT NULL AND lease_until IS NOT NULL GROUP BY owner
        """,
    ),
    # Events keyed by (run_id, seq): a run's journal lies together in one B-tree, so an
    # append writes one page where a row and its events_by_run entry wrote two or
    # three. seq is now numbered per run by the writer (see _memory.py); the
    # numbers already written are kept.
    (
        5,
        """
        CREATE TABLE events_v5 (
            run_id     TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            position   INTEGER,
            kind       TEXT NOT NULL,
            name       TEXT NOT NULL,
            payload    TEXT NOT NULL,
            created_at REAL NOT NULL,
            superseded INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;
        INSERT INTO events_v5 (run_id, seq, position, kind, name, payload, created_at, superseded)
            SELECT run_id, seq, position, kind, name, payload, created_at, superseded FROM events;
        DROP TABLE events;
        ALTER TABLE events_v5 RENAME TO events;
        CREATE INDEX events_unpositioned ON events (seq) WHERE position IS NULL
        """,
    ),
    # The same index with its condition spelled as _ACTIVE now is (queries must repeat
    # it to use the index), and without lease_until, which is no longer written.
    (
        6,
        f"""
        DROP INDEX IF EXISTS runs_active;
        CREATE INDEX runs_active ON runs (owner) WHERE {_ACTIVE}
        """,
    ),
    # Inputs in a table of their own: SQLite rewrites a whole row on every UPDATE, so a
    # 2 MB input was written again at each status change (100 MB for 20 sleeps).
    (
        7,
        """
        CREATE TABLE run_inputs (run_id TEXT PRIMARY KEY, input TEXT NOT NULL);
        INSERT INTO run_inputs (run_id, input) SELECT run_id, input FROM runs;
        ALTER TABLE runs DROP COLUMN input
        """,
    ),
    # Paging through runs newest first (list_runs, prune) without sorting the table;
    # and the seq the next event without a position must follow, kept apart from the
    # events so that pruning the newest such event cannot number a new one lower
    # than a cursor that has passed it (changes_since).
    (
        8,
        """
        CREATE INDEX runs_created ON runs (created_at DESC, run_id);
        CREATE TABLE journal_marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL)
        """,
    ),
    # Composition: a child run names its parent (whose journal hears of its end), a
    # run may have a deadline, and a message sent with a key is kept once per run.
    (
        9,
        """
        ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
        ALTER TABLE runs ADD COLUMN deadline REAL;
        CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
        CREATE TABLE message_keys (
            run_id TEXT NOT NULL,
            key    TEXT NOT NULL,
            seq    INTEGER NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID
        """,
    ),
    # Queues and schedules: a run's queue, priority and dedup key, when it was admitted
    # (rate windows count admissions), and the cron schedules seen on the journal.
    (
        10,
        f"""
        ALTER TABLE runs ADD COLUMN queue TEXT;
        ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN dedup_key TEXT;
        ALTER TABLE runs ADD COLUMN admitted_at REAL;
        CREATE INDEX runs_queued ON runs (queue, priority, created_at, run_id)
            WHERE status = 'queued';
        CREATE INDEX runs_in_queue ON runs (queue, admitted_at) WHERE queue IS NOT NULL;
        CREATE INDEX runs_holding_slots ON runs (queue, owner)
            WHERE queue IS NOT NULL AND status != 'queued' AND {_ACTIVE};
        CREATE UNIQUE INDEX runs_dedup ON runs (queue, dedup_key)
            WHERE dedup_key IS NOT NULL AND {_ACTIVE};
        CREATE TABLE schedules (
            workflow   TEXT PRIMARY KEY,
            cron       TEXT NOT NULL,
            tz         TEXT NOT NULL,
            first_seen REAL NOT NULL,
            last_tick  REAL
        )
        """,
    ),
    # The trace context current where a run was started (W3C traceparent, as JSON), so
    # that every process that executes it continues that trace.
    (11, "ALTER TABLE runs ADD COLUMN trace TEXT"),
]
SCHEMA_VERSION = _MIGRATIONS[-1][0]


def refuse_newer(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise DurableError(
            f"journal {path} has schema version {version}, newer than this durable's"
            f" {SCHEMA_VERSION}; upgrade durable to open it"
        )


def enter_wal(conn: sqlite3.Connection, patience: float = 10.0) -> None:
    """Put the file in WAL mode. While another process converts a new file, SQLite
    answers "database is locked" at once instead of waiting out the busy timeout,
    so two processes opening a new journal together retry here for a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def migrate(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target, script in _MIGRATIONS:
            if version < target:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")


def check_path(path: Path) -> None:
    try:
        _check_path_parts(path)
    except PermissionError as exc:
        raise DurableError(
            f"cannot reach journal {path}: permission denied on {exc.filename or path};"
            " give this process access to every folder on the way (chmod +x), or choose"
            " another path"
        ) from None


def _check_path_parts(path: Path) -> None:
    if path.is_dir():
        raise DurableError(
            f"journal path {path} is a directory; pass a file path such as {path / 'durable.db'}"
        )
    if not path.parent.is_dir():
        raise DurableError(f"cannot create journal {path}: folder {path.parent} does not exist")
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise DurableError(f"cannot create journal {path}: {exc.strerror}") from None
    elif not os.access(path, os.R_OK | os.W_OK):
        raise DurableError(f"journal {path} is not readable and writable by this process")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise DurableError(
            f"the folder {path.parent} is not writable: SQLite must create {path.name}-wal"
            " and -shm beside the journal; make the folder writable, or move the journal"
        )
