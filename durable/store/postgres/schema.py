"""The PostgreSQL journal's schema: its migrations, and its functions kept current.

The same tables as on SQLite (``runs``, ``run_inputs``, ``events``, ``owners``;
a run's input apart from the row each status change rewrites) with the same
columns and the same JSON text, in a schema of their own (``durable`` unless
the URL says ``?schema=``), plus ``schema_version``, ``journal_marks`` (the seq
that events without a position must follow, kept when the newest of them is
pruned) and ``writers`` (each group-commit writer's last committed batch, by
which it learns whether a batch whose connection broke committed; see
``writer.py``).

Tables change only by migration files (``postgres/migrations/``, frozen once
released). The functions (``postgres/functions/``) are no migration's: every
open compares a hash of their files, and one of their definitions as the
database holds them, with the hashes stored in ``installed_functions`` at the
last install, and reinstalls them all when either differs, so a database
created by any earlier version, or whose functions were changed by hand, gets
the functions of this version.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from durable.errors import DurableError
from durable.store import sql_files as _sql_files
from durable.store.sql_files import quote_ident

_MIGRATIONS = _sql_files.migrations("postgres")
_FUNCTIONS = _sql_files.functions()
_FUNCTIONS_HASH = _sql_files.files_hash(_FUNCTIONS)

SCHEMA_VERSION = _MIGRATIONS[-1].number

MIGRATION_LOCK = 7_213_931_000_002
"""The advisory lock under which a journal is created or migrated."""

_DEFINITIONS = """
    SELECT md5(coalesce(string_agg(pg_get_functiondef(p.oid), E'\n'
        ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)), ''))
    FROM pg_proc p
    WHERE p.pronamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = $1)"""
"""A hash of every function in the schema as the database holds it."""


async def migrate(
    conn: asyncpg.Connection,
    schema: str,
    where: str,
    target: int = SCHEMA_VERSION,
    functions: bool = True,
) -> None:
    """Create the journal in ``schema``, or bring it to ``target``, and its functions to
    this version's, under a lock; ``where`` (host, port, database) names the server in
    errors. Tests build older journals with a lower ``target`` and no functions."""
    if await _current(conn, schema, where, target, functions):
        return
    s = quote_ident(schema)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.installed_functions"
                " (files text NOT NULL, definitions text NOT NULL)"
            )
            version = await conn.fetchval(f"SELECT max(version) FROM {s}.schema_version") or 0
            _refuse_newer(version, schema, where)
            for migration in _MIGRATIONS:
                if version < migration.number <= target:
                    await conn.execute(_sql_files.for_schema(migration.text, schema))
            if version < target:
                await conn.execute(f"DELETE FROM {s}.schema_version")
                await conn.execute(f"INSERT INTO {s}.schema_version VALUES ($1)", target)
            if functions and not await _functions_current(conn, schema):
                await _install_functions(conn, schema)
    except asyncpg.InsufficientPrivilegeError as e:
        raise DurableError(
            f"PostgreSQL at {where}: {e}; the role needs the right to create the"
            f" schema {schema!r} and its tables (GRANT CREATE ON DATABASE ...), or"
            " an administrator creates it once by opening a runtime as a role that may"
        ) from None


async def _current(
    conn: asyncpg.Connection, schema: str, where: str, target: int, functions: bool
) -> bool:
    """Whether the journal is at ``target`` with this version's functions: a cheap read
    without the lock, done at every open (a newer journal is refused here)."""
    s = quote_ident(schema)
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.schema_version")
    if not exists:
        return False
    version = await conn.fetchval(f"SELECT max(version) FROM {s}.schema_version") or 0
    _refuse_newer(version, schema, where)
    if version < target:
        return False
    return not functions or await _functions_current(conn, schema)


async def _functions_current(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether the functions installed are this version's files, unchanged since."""
    s = quote_ident(schema)
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.installed_functions"):
        return False
    stored = await conn.fetchrow(f"SELECT files, definitions FROM {s}.installed_functions")
    if stored is None or stored["files"] != _FUNCTIONS_HASH:
        return False
    return bool(stored["definitions"] == await conn.fetchval(_DEFINITIONS, schema))


async def _install_functions(conn: asyncpg.Connection, schema: str) -> None:
    """Drop every function in the schema, create this version's, and store their hashes.

    Dropped, not only replaced: CREATE OR REPLACE cannot change a function's result
    type, and would leave a function whose signature changed or which no file
    defines any more. The journal's schema is durable's own, so every function in it
    is one of these; the caller's transaction makes the swap atomic for other
    sessions."""
    s = quote_ident(schema)
    stale = await conn.fetch(
        "SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS arguments"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
        schema,
    )
    for row in stale:
        await conn.execute(f"DROP FUNCTION {s}.{quote_ident(row[0])}({row[1]})")
    for function in _FUNCTIONS:
        await conn.execute(_sql_files.for_schema(function.text, schema))
    await conn.execute(f"DELETE FROM {s}.installed_functions")
    definitions = await conn.fetchval(_DEFINITIONS, schema)
    await conn.execute(
        f"INSERT INTO {s}.installed_functions VALUES ($1, $2)", _FUNCTIONS_HASH, definitions
    )


def _refuse_newer(version: int, schema: str, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise DurableError(
            f"the journal in schema {schema!r} at {where} has schema version"
            f" {version}, newer than this durable's {SCHEMA_VERSION}; upgrade durable"
        )


# -- the change feed --------------------------------------------------


def split_schema(url: str) -> tuple[str, str]:
    """The URL without its ``schema`` parameter, and that schema (default ``durable``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), "durable")
    if not schema.replace("_", "").isalnum() or schema[0].isdigit():
        raise ValueError(f"schema {schema!r} in the URL must be letters, digits and underscores")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def describe(url: str) -> str:
    """host:port/database of a URL, for error messages (never its password)."""
    parts = urlsplit(url)
    host = parts.hostname or os.environ.get("PGHOST", "localhost")
    port = parts.port or int(os.environ.get("PGPORT", "5432"))
    database = parts.path.lstrip("/") or os.environ.get("PGDATABASE", "(default)")
    return f"{host}:{port}/{database}"
