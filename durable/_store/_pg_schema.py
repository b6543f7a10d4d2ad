"""The PostgreSQL journal's schema and its migrations (its functions: ``_pg_functions.py``).

The same tables as on SQLite (``runs``, ``run_inputs``, ``events``, ``owners``;
a run's input apart from the row each status change rewrites) with the same
columns and the same JSON text, in a schema of their own (``durable`` unless
the URL says ``?schema=``), plus ``schema_version``, ``journal_marks`` (the seq
that events without a position must follow, kept when the newest of them is
pruned) and ``writers`` (each
group-commit writer's last committed batch, by which it learns whether a batch
whose connection broke committed; see ``_pg_writer.py``).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import DurableError
from ._pg_admission import admit_function, append_owned_admit_function
from ._pg_functions import (
    _TERMINAL,
    append_function,
    append_owned_function,
    create_runs_function,
)

SCHEMA_VERSION = 7

MIGRATION_LOCK = 7_213_931_000_002
"""The advisory lock under which a journal is created or migrated."""


def migrations(schema: str) -> list[tuple[int, str]]:
    """Each step takes a journal from the version before it to its own; never edit a
    released step, add one."""
    s = f'"{schema}"'
    return [
        (
            1,
            f"""
            CREATE TABLE {s}.runs (
                run_id       text PRIMARY KEY,
                workflow     text NOT NULL,
                version      text,
                status       text NOT NULL,
                input        text NOT NULL,
                input_digest text NOT NULL,
                output       text,
                error        text,
                owner        text,
                lease_until  double precision,
                created_at   double precision NOT NULL,
                updated_at   double precision NOT NULL
            );
            CREATE INDEX runs_active ON {s}.runs (owner) WHERE status NOT IN {_TERMINAL};
            CREATE INDEX runs_created ON {s}.runs (created_at DESC, run_id);
            CREATE TABLE {s}.events (
                run_id     text NOT NULL,
                seq        bigint NOT NULL,
                position   integer,
                kind       text NOT NULL,
                name       text NOT NULL,
                payload    text NOT NULL,
                created_at double precision NOT NULL,
                superseded boolean NOT NULL DEFAULT false,
                PRIMARY KEY (run_id, seq)
            );
            CREATE INDEX events_unpositioned ON {s}.events (seq) WHERE position IS NULL;
            CREATE TABLE {s}.owners (
                owner       text PRIMARY KEY,
                lease_until double precision NOT NULL
            );
            {append_function(schema)}
            """,
        ),
        (
            2,
            f"""
            CREATE TABLE {s}.writers (
                writer text PRIMARY KEY,
                batch  bigint NOT NULL
            );
            CREATE FUNCTION {s}.finish_batch(p_writer text, p_batch bigint, p_channel text)
            RETURNS void LANGUAGE plpgsql AS $fn$
            BEGIN
                IF p_writer IS NULL THEN
                    RETURN;
                END IF;
                INSERT INTO {s}.writers VALUES (p_writer, p_batch)
                    ON CONFLICT (writer) DO UPDATE SET batch = excluded.batch;
                IF p_channel IS NOT NULL THEN
                    PERFORM pg_notify(p_channel, p_writer);
                END IF;
            END
            $fn$;
            {append_function(schema)}
            CREATE TABLE {s}.run_inputs (
                run_id text PRIMARY KEY,
                input  text NOT NULL
            );
            INSERT INTO {s}.run_inputs (run_id, input) SELECT run_id, input FROM {s}.runs;
            ALTER TABLE {s}.runs DROP COLUMN input;
            """,
        ),
        (
            3,
            f"""
            CREATE TABLE {s}.journal_marks (
                name  text PRIMARY KEY,
                value bigint NOT NULL
            );
            {append_function(schema)}
            """,
        ),
        (
            4,
            f"""
            ALTER TABLE {s}.runs ADD COLUMN parent_run_id text;
            ALTER TABLE {s}.runs ADD COLUMN deadline double precision;
            CREATE INDEX runs_by_parent ON {s}.runs (parent_run_id)
                WHERE parent_run_id IS NOT NULL;
            CREATE TABLE {s}.message_keys (
                run_id text NOT NULL,
                key    text NOT NULL,
                seq    bigint NOT NULL,
                PRIMARY KEY (run_id, key)
            );
            {append_function(schema)}
            """,
        ),
        (
            5,
            f"""
            ALTER TABLE {s}.runs ADD COLUMN queue text;
            ALTER TABLE {s}.runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
            ALTER TABLE {s}.runs ADD COLUMN dedup_key text;
            ALTER TABLE {s}.runs ADD COLUMN admitted_at double precision;
            CREATE INDEX runs_queued ON {s}.runs (queue, priority, created_at, run_id)
                WHERE status = 'queued';
            CREATE INDEX runs_in_queue ON {s}.runs (queue, admitted_at)
                WHERE queue IS NOT NULL;
            CREATE INDEX runs_holding_slots ON {s}.runs (queue, owner)
                WHERE queue IS NOT NULL AND status <> 'queued' AND status NOT IN {_TERMINAL};
            CREATE UNIQUE INDEX runs_dedup ON {s}.runs (queue, dedup_key)
                WHERE dedup_key IS NOT NULL AND status NOT IN {_TERMINAL};
            CREATE TABLE {s}.schedules (
                workflow   text PRIMARY KEY,
                cron       text NOT NULL,
                tz         text NOT NULL,
                first_seen double precision NOT NULL,
                last_tick  double precision
            );
            """,
        ),
        (
            6,
            f"""
            ALTER TABLE {s}.runs ADD COLUMN trace text;
            {admit_function(schema)}
            {append_owned_function(schema)}
            {create_runs_function(schema)}
            """,
        ),
        (
            7,
            # The functions find rows by index only (enable_seqscan = off), and a run's
            # end and the admission behind it are one call.
            f"""
            {append_function(schema)}
            {admit_function(schema)}
            {append_owned_function(schema)}
            {create_runs_function(schema)}
            {append_owned_admit_function(schema)}
            """,
        ),
    ]


async def migrate(conn: asyncpg.Connection, schema: str, where: str) -> None:
    """Create the journal in ``schema``, or bring it to ``SCHEMA_VERSION``, under a lock;
    ``where`` (host, port, database) names the server in errors."""
    s = f'"{schema}"'
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.schema_version")
    if exists:
        version = await conn.fetchval(f"SELECT max(version) FROM {s}.schema_version")
        _refuse_newer(version or 0, schema, where)
        if version == SCHEMA_VERSION:
            return
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL)"
            )
            version = await conn.fetchval(f"SELECT max(version) FROM {s}.schema_version")
            _refuse_newer(version or 0, schema, where)
            for target, script in migrations(schema):
                if (version or 0) < target:
                    await conn.execute(script)
            await conn.execute(f"DELETE FROM {s}.schema_version")
            await conn.execute(f"INSERT INTO {s}.schema_version VALUES ($1)", SCHEMA_VERSION)
    except asyncpg.InsufficientPrivilegeError as e:
        raise DurableError(
            f"PostgreSQL at {where}: {e}; the role needs the right to create the"
            f" schema {schema!r} and its tables (GRANT CREATE ON DATABASE ...), or"
            " an administrator creates it once by opening a runtime as a role that may"
        ) from None


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
