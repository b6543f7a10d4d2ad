"""The SQLite journal file: its path checked, its schema and migrations.

The version is SQLite's ``user_version``; a journal written by a newer
durable is refused before anything, even WAL mode, changes the file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from durable.errors import DurableError
from durable.journal.records import TERMINAL
from durable.store import sql_files as _sql_files

# Unfinished runs. Spelled as comparisons, not NOT IN: SQLite builds a temporary B-tree
# for an IN list each time it evaluates one, on every insert or update of a run (the
# runs_active index's condition) and in every owned update (a tenth of a one-step
# workflow's instructions). The indexes' conditions in sqlite/migrations/ spell it so:
# a query must repeat it to use them.
_ACTIVE = "(" + " AND ".join(f"status != '{status}'" for status in sorted(TERMINAL)) + ")"

# Each file takes a journal from the version before it to its own; a new journal
# runs them all. Never edit a released file: add one (_sql_files.py).
_MIGRATIONS = _sql_files.migrations("sqlite")
SCHEMA_VERSION = _MIGRATIONS[-1].number


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


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    """Bring the journal to ``target`` (tests build older journals with a lower one)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= target:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for migration in _MIGRATIONS:
            if version < migration.number <= target:
                for statement in _sql_files.sqlite_statements(migration.text):
                    conn.execute(statement)
        if version < target:
            conn.execute(f"PRAGMA user_version = {target:d}")
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
