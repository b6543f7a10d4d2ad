"""The journal's SQL files: each backend's migrations, and PostgreSQL's functions.

They lie beside this module (``sqlite/migrations/``, ``postgres/migrations/``,
``postgres/functions/``) and are read with ``importlib.resources``, so the wheel
ships them. A migration file is ``NNNN_what.sql``, numbered from 1 without gaps;
once released it is never edited (``tests/test_migrations.py`` pins each one's
hash): a change to the schema is a new file. PostgreSQL files name the journal's
schema ``:"schema"`` (as psql's ``-v schema=...`` would), replaced by ``for_schema``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from importlib import resources

SCHEMA_PLACEHOLDER = ':"schema"'
"""How a PostgreSQL file names the journal's schema."""


@dataclass(frozen=True)
class SqlFile:
    """One file: its name, its number (a migration's version; 0 for a function) and text."""

    name: str
    number: int
    text: str


def _read(*folders: str) -> list[SqlFile]:
    folder = resources.files(__package__)
    for part in folders:
        folder = folder / part
    files: list[SqlFile] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            prefix = entry.name.split("_", 1)[0]
            number = int(prefix) if prefix.isdigit() else 0
            files.append(SqlFile(entry.name, number, entry.read_text(encoding="utf-8")))
    return sorted(files, key=lambda file: (file.number, file.name))


def migrations(backend: str) -> list[SqlFile]:
    """A backend's migration files in order; a gap or a repeated number is a bug."""
    files = _read(backend, "migrations")
    numbers = [file.number for file in files]
    if numbers != list(range(1, len(files) + 1)):
        raise RuntimeError(f"the {backend} migrations must be numbered 1, 2, ...: {numbers}")
    return files


def functions() -> list[SqlFile]:
    """PostgreSQL's function files, one function each, by name."""
    return _read("postgres", "functions")


def files_hash(files: list[SqlFile]) -> str:
    """A content hash of files, names included (a renamed file is a change)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}\0{file.text}\0".encode())
    return digest.hexdigest()


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def for_schema(text: str, schema: str) -> str:
    """A PostgreSQL file's text with its schema placeholder replaced by ``schema``."""
    return text.replace(SCHEMA_PLACEHOLDER, quote_ident(schema))


def sqlite_statements(text: str) -> list[str]:
    """A SQLite file's statements, one by one (Python's sqlite3 runs one per call)."""
    statements: list[str] = []
    pending = ""
    for line in text.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        not line.strip() or line.lstrip().startswith("--") for line in pending.splitlines()
    ):
        raise ValueError(f"unfinished SQL statement: {pending.strip()[:80]!r}")
    return statements
