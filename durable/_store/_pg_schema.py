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

SCHEMA_VERSION = 4

MESSAGE_LOCK = 7_213_931_000_001
"""The advisory lock held by transactions that append events without a position."""

MIGRATION_LOCK = 7_213_931_000_002
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
    ]


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
