"""What the writer's jobs remember between them, so a write needs fewer queries.

Two things: each run's last ``seq`` (the events table is keyed by
``(run_id, seq)``, so a run's journal lies together in one B-tree and an
append writes one page; SQLite cannot number such rows, so the writer does),
and the runs seen owned and unfinished (an owned write need not read the
run's row again). Both hold only while no one else has written: they are
dropped whenever another connection has committed (``PRAGMA data_version``,
read under the write lock as each transaction begins), whenever writes are
rolled back, and past ``LIMIT`` runs.
"""

from __future__ import annotations

import sqlite3

from durable.journal.records import NewEvent

_INSERT = (
    "INSERT INTO events (run_id, seq, position, kind, name, payload, created_at)"
    " VALUES (?,?,?,?,?,?,?)"
)
_LAST_OF_RUN = "SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ?"
# The newest event without a position, or the newest one pruned (journal_marks).
_LAST_UNPOSITIONED = (
    "SELECT max(coalesce((SELECT max(seq) FROM events WHERE position IS NULL), 0),"
    " coalesce((SELECT value FROM journal_marks WHERE name = 'unpositioned'), 0))"
)


class JobMemory:
    """Kept by one write connection's store; the writer calls ``began`` and
    ``rolled_back``."""

    LIMIT = 100_000
    """Runs remembered at most (a few megabytes). A recovery claims up to every unfinished
    run at once and its writes come next: below that number, they would all look their
    runs up again."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self.held: dict[str, str] = {}
        """Runs seen owned and unfinished: run id -> the claim they are held under. Jobs
        that may change a run's claim or status remove it."""
        self._version: int | None = None

    def began(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version or max(len(self._last), len(self.held)) > self.LIMIT:
            self._forget_all()
            self._version = version

    def rolled_back(self) -> None:
        self._forget_all()

    def _forget_all(self) -> None:
        self._last.clear()
        self.held.clear()

    # -- numbering events ---------------------------------------------------

    def insert(self, conn: sqlite3.Connection, event: NewEvent) -> int:
        """Insert ``event`` as the next ``seq`` of its run. Events without a position
        (messages, cancels) also follow every earlier such event of any run, so a reader
        can follow them across runs with one cursor (``changes_since``)."""
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

    def created(self, run_id: str, claim: str | None) -> None:
        """The run's row was just inserted: it has no events yet."""
        self._last[run_id] = 0
        if claim is not None:
            self.held[run_id] = claim

    def claimed(self, run_id: str, claim: str, last_seq: int) -> None:
        """The unfinished run was just claimed (``claim``); its last seq was read."""
        self._last[run_id] = last_seq
        self.held[run_id] = claim

    def ended(self, run_id: str) -> None:
        """The run has ended here: nothing about it is needed again soon."""
        self._last.pop(run_id, None)
        self.held.pop(run_id, None)
