"""Storage behind the ``Store`` protocol; ``open_store`` picks the implementation."""

from .base import EventRecord, Guard, NewEvent, RunRecord, RunUpdate, Store
from .sqlite import SqliteStore

__all__ = ["EventRecord", "Guard", "NewEvent", "RunRecord", "RunUpdate", "SqliteStore", "Store"]
