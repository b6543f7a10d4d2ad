"""The PostgreSQL journal's schema, its migrations, and the one function that appends.

The same tables as on SQLite (``runs``, ``run_inputs``, ``events``, ``owners``;
a run's input apart from the row each status change rewrites) with the same
columns and the same JSON text, in a schema of their own (``durable`` unless
the URL says ``?schema=``), plus ``schema_version``, ``journal_marks`` (the seq
that events without a position must follow, kept when the newest of them is
pruned) and ``writers`` (each
group-commit writer's last committed batch, by which it learns whether a batch
whose connection broke committed; see ``_pg_writer.py``). Every
journal write goes through ``append``: it locks the run's row, checks in SQL what
the write expects (owned by this runtime, still unfinished, a wait still
unanswered) and numbers the events as the SQLite writer does: ``seq`` counts
up within a run, and an event without a position also follows every earlier
such event of any run. For that last rule writers of such events take one
advisory lock until they commit, so their seqs are also in commit order and
``changes_since`` can follow them with one cursor. A refused write returns
why (``refused``) and writes nothing; it does not raise, so it does not
abort the other writes of its batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import DurableError, RunNotFound
from .base import Expect, LeaseLost, NewEvent, RunEnded, RunUpdate, WaitAnswered

SCHEMA_VERSION = 6

MESSAGE_LOCK = 7_213_931_000_001
"""The advisory lock held by transactions that append events without a position."""

MIGRATION_LOCK = 7_213_931_000_002
QUEUE_LOCK = 7_213_931
"""With a hash of the schema and queue name, the advisory lock an admission to the queue
holds until it commits."""
"""The advisory lock under which a journal is created or migrated."""

_TERMINAL = "('cancelled', 'completed', 'failed')"


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
            """,
        ),
    ]


RUN_COLUMNS = (
    "runs.run_id, workflow, version, status, run_inputs.input, input_digest, output, error,"
    " runs.owner, owners.lease_until, created_at, updated_at, parent_run_id, deadline,"
    " queue, priority, dedup_key, trace"
)
"""A run as read, its input and its lease beside it: ``RunRecord``'s fields in order."""


def admit_function(schema: str) -> str:
    """``admit``: one call takes each queue's advisory lock, counts the slots held and the
    rate window, and takes the next queued runs (``_pg_leases.admit`` says why).

    Each statement of a plpgsql function sees what committed before it began, so the
    counts after the lock see every admission that held it before."""
    s = f'"{schema}"'
    return f"""
CREATE OR REPLACE FUNCTION {s}.admit(
    p_owner text, p_now double precision, p_limit integer, p_queues text[], p_locks text[],
    p_concurrency integer[], p_per_runtime integer[], p_rate_n integer[],
    p_rate_s double precision[], p_workflows text[], p_versions text[],
    p_writer text, p_batch bigint, p_channel text)
RETURNS TABLE (
    o_retry_at double precision, o_fresh boolean, o_run_id text, o_workflow text,
    o_version text, o_status text, o_input text, o_input_digest text, o_output text,
    o_error text, o_owner text, o_lease_until double precision,
    o_created_at double precision, o_updated_at double precision, o_parent_run_id text,
    o_deadline double precision, o_queue text, o_priority integer, o_dedup_key text,
    o_trace text)
LANGUAGE plpgsql AS $fn$
DECLARE
    taken text[] := '{{}}';
    fresh text[] := '{{}}';
    retry_at double precision;
    i integer;
    v_room integer;
    v_running bigint;
    v_mine bigint;
    v_started bigint;
    v_oldest double precision;
    v_window double precision;
    v_ids text[];
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_queues, 1), 0) LOOP
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM {s}.runs r WHERE r.status = 'queued' AND r.queue = p_queues[i]);
        PERFORM pg_advisory_xact_lock({QUEUE_LOCK}, hashtext(p_locks[i]));
        SELECT count(*), count(*) FILTER (WHERE r.owner = p_owner) INTO v_running, v_mine
            FROM {s}.runs r WHERE r.queue = p_queues[i] AND r.queue IS NOT NULL
            AND r.status <> 'queued' AND r.status NOT IN {_TERMINAL};
        v_room := p_limit - coalesce(array_length(taken, 1), 0);
        IF p_concurrency[i] IS NOT NULL THEN
            v_room := least(v_room, p_concurrency[i] - v_running);
        END IF;
        IF p_per_runtime[i] IS NOT NULL THEN
            v_room := least(v_room, p_per_runtime[i] - v_mine);
        END IF;
        v_window := NULL;
        IF p_rate_n[i] IS NOT NULL THEN
            SELECT count(*), min(r.admitted_at) INTO v_started, v_oldest FROM {s}.runs r
                WHERE r.queue = p_queues[i] AND r.admitted_at > p_now - p_rate_s[i];
            IF p_rate_n[i] - v_started <= v_room THEN
                v_room := p_rate_n[i] - v_started;
                v_window := coalesce(v_oldest, p_now) + p_rate_s[i];
            END IF;
        END IF;
        CONTINUE WHEN v_room <= 0 AND v_window IS NULL;
        SELECT coalesce(array_agg(q.run_id ORDER BY q.priority, q.created_at, q.run_id), '{{}}')
            INTO v_ids FROM (
                SELECT r.run_id, r.priority, r.created_at FROM {s}.runs r
                WHERE r.queue = p_queues[i] AND r.status = 'queued'
                AND (p_workflows IS NULL OR (r.workflow, coalesce(r.version, '1')) IN
                    (SELECT * FROM unnest(p_workflows, p_versions)))
                ORDER BY r.priority, r.created_at, r.run_id
                LIMIT greatest(v_room, 0) + 1 FOR UPDATE SKIP LOCKED) q;
        IF v_window IS NOT NULL AND coalesce(array_length(v_ids, 1), 0) > greatest(v_room, 0)
        THEN
            retry_at := least(coalesce(retry_at, v_window), v_window);
        END IF;
        v_ids := v_ids[1:greatest(v_room, 0)];
        UPDATE {s}.runs r SET status = 'pending', owner = p_owner, admitted_at = p_now
            WHERE r.run_id = ANY(v_ids);
        fresh := fresh || ARRAY(SELECT x FROM unnest(v_ids) x WHERE NOT EXISTS
            (SELECT 1 FROM {s}.events e WHERE e.run_id = x));
        taken := taken || v_ids;
    END LOOP;
    PERFORM {s}.finish_batch(p_writer, p_batch, p_channel);
    -- The runs as they are now (a statement of the caller's would see them as they were
    -- before this call, and not at all a run queued meanwhile); a first row with no run
    -- when none was taken, for retry_at.
    RETURN QUERY SELECT retry_at, runs.run_id = ANY(fresh), {RUN_COLUMNS}
        FROM unnest(taken) WITH ORDINALITY AS t(id, n)
        JOIN {s}.runs ON runs.run_id = t.id
        JOIN {s}.run_inputs ON run_inputs.run_id = runs.run_id
        LEFT JOIN {s}.owners ON owners.owner = runs.owner ORDER BY t.n;
    IF NOT FOUND THEN
        o_retry_at := retry_at;
        RETURN NEXT;
    END IF;
END
$fn$;
"""


def append_function(schema: str) -> str:
    s = f'"{schema}"'
    return f"""
CREATE OR REPLACE FUNCTION {s}.append(
    p_run text, p_owner text, p_expect_active boolean, p_pending_wait text,
    p_has_update boolean, p_status text, p_output text, p_error text,
    p_updated double precision, p_reset boolean, p_release boolean, p_only_if_active boolean,
    p_positions integer[], p_kinds text[], p_names text[], p_payloads text[],
    p_created double precision[],
    OUT refused text, OUT detail text, OUT seqs bigint[])
LANGUAGE plpgsql AS $fn$
DECLARE
    v_status text;
    v_owner text;
    v_last bigint;
    v_unpositioned bigint := NULL;
    v_parent text;
    v_parent_last bigint;
    i integer;
BEGIN
    seqs := '{{}}';
    SELECT status, owner INTO v_status, v_owner FROM {s}.runs WHERE run_id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        IF p_owner IS NOT NULL THEN
            refused := 'deleted';
            RETURN;
        END IF;
        IF p_expect_active IS NOT NULL THEN
            refused := 'not_found';
            RETURN;
        END IF;
    END IF;
    IF p_owner IS NOT NULL AND v_owner IS DISTINCT FROM p_owner THEN
        refused := 'lease_lost';
        detail := v_owner;
        RETURN;
    END IF;
    IF (p_owner IS NOT NULL OR p_expect_active) AND v_status IN {_TERMINAL} THEN
        refused := 'ended';
        detail := v_status;
        RETURN;
    END IF;
    IF p_pending_wait IS NOT NULL AND NOT (
        EXISTS (
            SELECT 1 FROM {s}.events w WHERE w.run_id = p_run AND w.kind = 'wait.started'
            AND w.name = p_pending_wait AND NOT w.superseded AND NOT EXISTS (
                SELECT 1 FROM {s}.events c WHERE c.run_id = p_run AND c.position = w.position
                AND c.kind = 'wait.completed' AND NOT c.superseded))
        AND NOT EXISTS (
            SELECT 1 FROM {s}.events m WHERE m.run_id = p_run AND m.kind = 'message'
            AND m.name = p_pending_wait AND m.seq NOT IN (
                SELECT (c.payload::jsonb ->> 'message')::bigint FROM {s}.events c
                WHERE c.run_id = p_run AND c.kind = 'wait.completed' AND NOT c.superseded
                AND c.payload::jsonb ? 'message'
                AND jsonb_typeof(c.payload::jsonb -> 'message') = 'number'))
    ) THEN
        refused := 'wait_answered';
        RETURN;
    END IF;
    IF p_has_update THEN
        UPDATE {s}.runs SET
            updated_at = p_updated,
            status = coalesce(p_status, status),
            output = CASE WHEN p_output IS NOT NULL THEN p_output
                          WHEN p_reset THEN NULL ELSE output END,
            error = CASE WHEN p_error IS NOT NULL THEN p_error
                         WHEN p_reset THEN NULL ELSE error END,
            owner = CASE WHEN p_release THEN NULL ELSE owner END,
            lease_until = CASE WHEN p_release THEN NULL ELSE lease_until END
        WHERE run_id = p_run AND (NOT p_only_if_active OR status NOT IN {_TERMINAL})
        RETURNING parent_run_id INTO v_parent;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        -- A child's end, whatever ended it, is told to its parent in this transaction.
        IF v_parent IS NOT NULL AND p_status IN {_TERMINAL} THEN
            PERFORM 1 FROM {s}.runs WHERE run_id = v_parent FOR UPDATE;
            PERFORM pg_advisory_xact_lock({MESSAGE_LOCK});
            SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT value
                FROM {s}.journal_marks WHERE name = 'unpositioned'), 0))
                INTO v_unpositioned FROM {s}.events WHERE position IS NULL;
            SELECT coalesce(max(seq), 0) INTO v_parent_last FROM {s}.events
                WHERE run_id = v_parent;
            v_unpositioned := greatest(v_unpositioned, v_parent_last) + 1;
            INSERT INTO {s}.events (run_id, seq, position, kind, name, payload, created_at)
                VALUES (v_parent, v_unpositioned, NULL, 'message', 'child:' || p_run,
                        '{{"status":"' || p_status || '"}}', p_updated);
        END IF;
    END IF;
    IF coalesce(array_length(p_kinds, 1), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT coalesce(max(seq), 0) INTO v_last FROM {s}.events WHERE run_id = p_run;
    FOR i IN 1 .. array_length(p_kinds, 1) LOOP
        IF p_positions[i] IS NULL THEN
            IF v_unpositioned IS NULL THEN
                PERFORM pg_advisory_xact_lock({MESSAGE_LOCK});
                SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT value
                    FROM {s}.journal_marks WHERE name = 'unpositioned'), 0))
                    INTO v_unpositioned FROM {s}.events WHERE position IS NULL;
            END IF;
            v_last := greatest(v_last, v_unpositioned) + 1;
            v_unpositioned := v_last;
        ELSE
            v_last := v_last + 1;
        END IF;
        INSERT INTO {s}.events (run_id, seq, position, kind, name, payload, created_at)
            VALUES (p_run, v_last, p_positions[i], p_kinds[i], p_names[i], p_payloads[i],
                    p_created[i]);
        seqs := seqs || v_last;
    END LOOP;
END
$fn$;
"""


def append_args(
    run_id: str,
    events: Sequence[NewEvent],
    update: RunUpdate | None,
    expect: Expect | None,
    owner: str | None,
) -> tuple[Any, ...]:
    u = update
    return (
        run_id,
        owner,
        None if expect is None else expect.active,
        None if expect is None else expect.pending_wait,
        u is not None,
        u and u.status,
        u and u.output,
        u and u.error,
        u.updated_at if u else None,
        bool(u and u.reset_result),
        bool(u and u.release),
        bool(u.only_if_active) if u else True,
        [event.position for event in events],
        [event.kind for event in events],
        [event.name for event in events],
        [event.payload for event in events],
        [event.created_at for event in events],
    )


def append_outcome(run_id: str, expect: Expect | None) -> Callable[[Any], list[int]]:
    """What an ``append`` row means: the new events' seqs, or the refusal to raise."""

    def finish(row: Any) -> list[int]:
        refused, detail, seqs = row
        if refused is not None:
            raise refusal(run_id, refused, detail, expect)
        return list(seqs)

    return finish


def refusal(run_id: str, refused: str, detail: str | None, expect: Expect | None) -> Exception:
    if refused == "lease_lost":
        return LeaseLost(f"run {run_id!r} is now owned by {detail!r}")
    if refused == "deleted":
        return LeaseLost(f"run {run_id!r} was deleted from the runs table", deleted=True)
    if refused == "ended":
        return RunEnded(run_id, detail or "")
    if refused == "not_found":
        return RunNotFound(run_id)
    wait = expect.pending_wait if expect else None
    return WaitAnswered(f"wait {wait!r} of run {run_id!r} was answered")


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
