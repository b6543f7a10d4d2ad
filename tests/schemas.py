"""A journal's schema as data, on either backend, to compare a migrated journal with a
new one: tables, columns (name, type, nullability, default), indexes, constraints and,
on PostgreSQL, the functions. Also builds a journal at an earlier schema version."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from durable.store.postgres import schema as _pg_schema
from durable.store.postgres.schema import split_schema
from durable.store.sql_files import quote_ident
from durable.store.sqlite import schema as _sqlite_schema

from .conftest import TEST_SCHEMA_PREFIX

Schema = dict[str, Any]


def _spaced(sql: str | None) -> str:
    return " ".join((sql or "").split())


def sqlite_schema(path: Path) -> Schema:
    """Every table's columns and declaration, and every index's declaration."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        tables = sorted(name for kind, name, _, _ in objects if kind == "table")
        return {
            "tables": {name: _spaced(sql) for kind, name, _, sql in objects if kind == "table"},
            "columns": {
                table: [tuple(row[1:6]) for row in conn.execute(f"PRAGMA table_xinfo({table!r})")]
                for table in tables
            },
            "indexes": {
                name: (table, _spaced(sql)) for kind, name, table, sql in objects if kind == "index"
            },
        }


def sqlite_at(path: Path, version: int) -> None:
    """A journal file at ``version``, as the migrations up to it left it."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        _sqlite_schema.migrate(conn, target=version)


_COLUMNS = """
    SELECT table_name, column_name, data_type, is_nullable, column_default
    FROM information_schema.columns WHERE table_schema = $1
    ORDER BY table_name, ordinal_position"""
_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1"
_CONSTRAINTS = """
    SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid)
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1"""
_FUNCTIONS = """
    SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1"""


async def postgres_schema(url: str) -> Schema:
    """The same for a PostgreSQL journal, its schema's name written as ``<schema>``."""
    plain, schema = split_schema(url)
    conn = await asyncpg.connect(plain)
    try:
        found = {
            "columns": await conn.fetch(_COLUMNS, schema),
            "indexes": sorted(await conn.fetch(_INDEXES, schema)),
            "constraints": sorted(await conn.fetch(_CONSTRAINTS, schema)),
            "functions": sorted(await conn.fetch(_FUNCTIONS, schema)),
        }
    finally:
        await conn.close()

    def generic(value: Any) -> Any:
        text = str(value) if value is not None else None
        if text is None:
            return None
        return text.replace(quote_ident(schema), "<schema>").replace(schema, "<schema>")

    return {
        part: [tuple(generic(value) for value in row) for row in rows]
        for part, rows in found.items()
    }


async def postgres_at(url: str, version: int) -> None:
    """A journal in the URL's schema at ``version``, without functions (those of an
    earlier version are not kept: the old-journal fixtures carry them)."""
    plain, schema = split_schema(url)
    conn = await asyncpg.connect(plain)
    try:
        await _pg_schema.migrate(conn, schema, "test", target=version, functions=False)
    finally:
        await conn.close()


async def drop_schema(url: str) -> None:
    """Drop the URL's schema: only ever one a test made, never a journal of someone's."""
    plain, schema = split_schema(url)
    if not schema.startswith(TEST_SCHEMA_PREFIX):
        raise ValueError(f"refusing to drop schema {schema!r}: the tests made no such schema")
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


def differences(migrated: Schema, fresh: Schema) -> list[str]:
    """What only one of two schemas has, part by part: none when they are the same."""
    found = []
    for part in sorted(set(migrated) | set(fresh)):
        ours, theirs = migrated.get(part) or {}, fresh.get(part) or {}
        if isinstance(ours, dict):
            ours, theirs = list(ours.items()), list(theirs.items())
        only_ours = [repr(item) for item in ours if item not in theirs]
        only_theirs = [repr(item) for item in theirs if item not in ours]
        found += [f"{part}: only migrated: {item}" for item in only_ours]
        found += [f"{part}: only new: {item}" for item in only_theirs]
        if not only_ours and not only_theirs and ours != theirs:
            found.append(f"{part}: in another order")
    return found
