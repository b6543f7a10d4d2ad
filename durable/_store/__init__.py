"""Storage behind the ``Store`` protocol, and its SQLite implementation."""

from .base import EventRecord, Guard, NewEvent, RunRecord, RunUpdate, Store
from .sqlite import SqliteStore

__all__ = ["EventRecord", "Guard", "NewEvent", "RunRecord", "RunUpdate", "SqliteStore", "Store"]
