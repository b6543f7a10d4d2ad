"""Numbering journal events: each run's ``seq`` counts up, assigned by the writer.

The events table is keyed by ``(run_id, seq)``, so a run's journal lies together
in one B-tree and an append writes one page, not a row plus an index entry.
SQLite cannot number such rows itself, so the writer does: the next ``seq`` of
a run follows its last one. Events without a position (messages, cancels) also
follow every earlier such event of any run, so a reader can follow them across
runs with one cursor (``changes_since``).
"""

from __future__ import annotations

import sqlite3

from .base import NewEvent

_INSERT = (
    "INSERT INTO events (run_id, seq, position, kind, name, payload, created_at)"
    " VALUES (?,?,?,?,?,?,?)"
)
_LAST_OF_RUN = "SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ?"
_LAST_UNPOSITIONED = "SELECT coalesce(max(seq), 0) FROM events WHERE position IS NULL"


class Sequencer:
    """Assigns and inserts events for one write connection, remembering each run's last
    ``seq`` so that an append needs no query of its own.

    What it remembers is dropped whenever another connection has committed since
    (``PRAGMA data_version``, read as each transaction begins), so a run written by
    another process is looked up again. A number remembered from a transaction that
    was rolled back only leaves a gap; order is all ``seq`` promises.
    """

    LIMIT = 10_000
    """Runs remembered at most; past it the next transaction starts afresh."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._version: int | None = None

    def reset(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version or len(self._last) > self.LIMIT:
            self._last.clear()
            self._version = version

    def insert(self, conn: sqlite3.Connection, event: NewEvent) -> int:
        run_id = event.run_id
        last = self._last.get(run_id)
        if last is None:
            last = conn.execute(_LAST_OF_RUN, (run_id,)).fetchone()[0]
        if event.position is None:
            last = max(last, conn.execute(_LAST_UNPOSITIONED).fetchone()[0])
        seq: int = last + 1
        values = (
            run_id,
            seq,
            event.position,
            event.kind,
            event.name,
            event.payload,
            event.created_at,
        )
        try:
            conn.execute(_INSERT, values)
        except sqlite3.IntegrityError:
            self._last.pop(run_id, None)  # look it up again next time
            raise
        self._last[run_id] = seq
        return seq

    def created(self, run_id: str) -> None:
        """The run's row was just inserted: it has no events yet."""
        self._last[run_id] = 0

    def forget(self, run_id: str) -> None:
        """The run has ended here: its last number is not needed again soon."""
        self._last.pop(run_id, None)
