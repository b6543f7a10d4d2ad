"""Background checkpoints: the WAL is copied into the database file off the writer's thread.

SQLite's own checkpoint runs inside the commit that takes the WAL past its
threshold, on the writer's thread. At durability normal that commit also
waits for everything written since the last checkpoint to reach the disk (an
fsync of the WAL, then of the database), with the event loop stalled, since the
loop writer commits on it. Here a passive
checkpoint runs on a thread of its own shortly after writes, in parallel
with the loop. The writer's own checkpoint stays as a backstop for a WAL the
background falls behind on; it then finds little left to copy, and it is
still what lets the WAL start over from its beginning (SQLite restarts the WAL
only at a write that finds every frame copied).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("durable")

_INTERVAL = 0.05
"""Seconds between looks while the journal is being written."""
_IDLE_INTERVAL = 1.0
"""The longest wait between looks, reached by doubling while nothing is written."""


class Checkpointer:
    """A thread that checkpoints the journal whenever another connection has written."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="durable-checkpoint", daemon=True)
        self.passes = 0
        """Checkpoints run that found frames to copy."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any (blocks until then)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            log.warning("durable: no background checkpoints (%s); SQLite's own go on", exc)
            return
        failed = False
        try:
            version = None
            interval = _INTERVAL
            while not self._stop.wait(interval):
                try:
                    now = conn.execute("PRAGMA data_version").fetchone()[0]
                    if now == version:
                        interval = min(interval * 2, _IDLE_INTERVAL)
                        continue
                    version, interval = now, _INTERVAL
                    _, _, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if copied > 0:
                        self.passes += 1
                except sqlite3.Error as exc:  # the writer's own checkpoints still run
                    log.log(
                        logging.DEBUG if failed else logging.WARNING,
                        "durable: a background checkpoint failed: %s",
                        exc,
                    )
                    failed = True
        finally:
            conn.close()
