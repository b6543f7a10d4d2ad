"""Storage behind the ``Store`` protocol: SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import os

from durable.journal.records import EventRecord, Expect, NewEvent, RunRecord, RunUpdate
from durable.store.ports import Store
from durable.store.sqlite.store import SqliteStore

__all__ = [
    "EventRecord",
    "Expect",
    "NewEvent",
    "RunRecord",
    "RunUpdate",
    "SqliteStore",
    "Store",
    "is_url",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_url(db: str | os.PathLike[str]) -> bool:
    """True when ``db`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(_POSTGRES_SCHEMES)


def open_store(
    db: str | os.PathLike[str], durability: str, writer: str | None, poll_interval: float
) -> Store:
    """The store for ``db``: a ``postgresql://`` URL, or a path to a SQLite file."""
    if is_url(db):
        if writer is not None:
            raise ValueError(
                "writer= chooses where SQLite commits run; PostgreSQL has no such choice"
            )
        from durable.store.postgres.store import PostgresStore  # asyncpg: an extra

        return PostgresStore(str(db), durability, poll_interval)
    return SqliteStore(db, durability, writer, poll_interval)
