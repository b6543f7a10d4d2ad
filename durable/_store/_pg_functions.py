"""The PostgreSQL journal's functions, and how the store calls them.

Every journal write goes through ``append``: it locks the run's row, checks in
SQL what the write expects (owned by this runtime, still unfinished, a wait
still unanswered) and numbers the events as the SQLite writer does: ``seq``
counts up within a run, and an event without a position also follows every
earlier such event of any run. For that last rule writers of such events take
one advisory lock until they commit, so their seqs are also in commit order and
``changes_since`` can follow them with one cursor. A refused write returns why
(``refused``) and writes nothing; it does not raise, so it does not abort the
other writes of its batch.

``append_owned`` does the work of a batch of ``append`` calls whose writes are
all a runtime's own progress, in one call. Queue admission: ``_pg_admission.py``.

Each function runs with ``enable_seqscan = off``: every statement in them finds
its rows by an index, but plpgsql plans a statement once for any parameters, and
for ``run_id = ANY($1)`` over a runs table of a few thousand rows the planner
takes a scan of the whole table as cheaper (0.4 ms a statement at 1,500 runs,
growing with the table, against microseconds by the primary key): in (g), 10,000
queued runs, that took queued runs/s from 1,900 to 2,200 and admission p50 from
4.2 to 3.4 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import RunNotFound
from .base import (
    TERMINAL,
    Expect,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    WaitAnswered,
)

MESSAGE_LOCK = 7_213_931_000_001
"""The advisory lock held by transactions that append events without a position."""

_TERMINAL = "('cancelled', 'completed', 'failed')"

RUN_COLUMNS = (
    "runs.run_id, workflow, version, status, run_inputs.input, input_digest, output, error,"
    " runs.owner, owners.lease_until, created_at, updated_at, parent_run_id, deadline,"
    " queue, priority, dedup_key, trace"
)
"""A run as read, its input and its lease beside it: ``RunRecord``'s fields in order."""


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
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
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


OWNED_PARAMETERS = """    p_owner text, p_runs text[], p_has_update boolean[], p_statuses text[],
    p_updated double precision[], p_outputs text[], p_errors text[],
    p_event_writes integer[], p_positions integer[], p_kinds text[], p_names text[],
    p_payloads text[], p_created double precision[],"""
"""``append_owned``'s parameters but the batch marker, as ``owned_args`` gives them."""


def append_owned_function(schema: str) -> str:
    """``append_owned``: a batch of owners' writes in one call, a statement per table
    instead of a function call per write (most writes are a run's owner journaling its
    progress, or its end). What it refuses and writes is what ``append`` would, write by
    write: a run gone, owned by another, or ended refuses every write of it in the batch
    (the caller sends no write of a run after the one that ends it); a child's end is
    told to its parent.

    The writes come as parallel arrays; ``p_event_writes`` says which write each event
    belongs to (in order). ``seqs`` holds the new events' seqs in order, none for the
    refused writes."""
    s = f'"{schema}"'
    return f"""
CREATE OR REPLACE FUNCTION {s}.append_owned(
{OWNED_PARAMETERS}
    p_writer text, p_batch bigint, p_channel text,
    OUT refused text[], OUT details text[], OUT seqs bigint[])
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
DECLARE
    v_ended text[];
    v_child text;
    v_parent text;
    v_status text;
    v_updated double precision;
    v_seq bigint;
BEGIN
    -- Every run written, locked in one order (so two writers never deadlock).
    WITH locked AS MATERIALIZED (
        SELECT r.run_id, r.status, r.owner FROM {s}.runs r
        WHERE r.run_id = ANY(p_runs) ORDER BY r.run_id FOR UPDATE)
    SELECT array_agg(CASE WHEN l.run_id IS NULL THEN 'deleted'
                          WHEN l.owner IS DISTINCT FROM p_owner THEN 'lease_lost'
                          WHEN l.status IN {_TERMINAL} THEN 'ended' END ORDER BY w.n),
           array_agg(CASE WHEN l.run_id IS NULL THEN NULL
                          WHEN l.owner IS DISTINCT FROM p_owner THEN l.owner
                          WHEN l.status IN {_TERMINAL} THEN l.status END ORDER BY w.n)
        INTO refused, details
        FROM unnest(p_runs) WITH ORDINALITY AS w(run_id, n)
        LEFT JOIN locked l ON l.run_id = w.run_id;
    UPDATE {s}.runs r SET updated_at = u.updated, status = coalesce(u.status, r.status),
        output = coalesce(u.output, r.output), error = coalesce(u.error, r.error)
    FROM (
        SELECT w.run_id, (array_agg(w.updated ORDER BY w.n DESC))[1] AS updated,
               (array_agg(w.status ORDER BY w.n DESC) FILTER (WHERE w.status IS NOT NULL))[1]
               AS status,
               (array_agg(w.output ORDER BY w.n DESC) FILTER (WHERE w.output IS NOT NULL))[1]
               AS output,
               (array_agg(w.error ORDER BY w.n DESC) FILTER (WHERE w.error IS NOT NULL))[1]
               AS error
        FROM unnest(p_runs, p_has_update, p_statuses, p_updated, p_outputs, p_errors, refused)
             WITH ORDINALITY AS w(run_id, has_update, status, updated, output, error, refused, n)
        WHERE w.has_update AND w.refused IS NULL GROUP BY w.run_id) u
    WHERE r.run_id = u.run_id AND r.status NOT IN {_TERMINAL};
    WITH e AS (
        SELECT p_runs[x.w] AS run_id, x.k, x.position, x.kind, x.name, x.payload, x.created
        FROM unnest(p_event_writes, p_positions, p_kinds, p_names, p_payloads, p_created)
             WITH ORDINALITY AS x(w, position, kind, name, payload, created, k)
        WHERE refused[x.w] IS NULL),
    numbered AS (
        SELECT e.*, coalesce((SELECT max(v.seq) FROM {s}.events v WHERE v.run_id = e.run_id), 0)
            + row_number() OVER (PARTITION BY e.run_id ORDER BY e.k) AS seq
        FROM e),
    inserted AS (
        INSERT INTO {s}.events (run_id, seq, position, kind, name, payload, created_at)
        SELECT n.run_id, n.seq, n.position, n.kind, n.name, n.payload, n.created FROM numbered n)
    SELECT coalesce(array_agg(n.seq ORDER BY n.k), '{{}}') INTO seqs FROM numbered n;
    -- A child's end is told to its parent in this transaction (as append does),
    -- after the batch's own events, as the writes came.
    SELECT array_agg(w.run_id) INTO v_ended FROM unnest(p_runs, p_statuses, refused)
        AS w(run_id, status, refused) WHERE w.status IN {_TERMINAL} AND w.refused IS NULL;
    FOR v_child, v_parent, v_status, v_updated IN
        SELECT r.run_id, r.parent_run_id, r.status, r.updated_at FROM {s}.runs r
        WHERE r.run_id = ANY(v_ended) AND r.parent_run_id IS NOT NULL ORDER BY r.run_id
    LOOP
        PERFORM 1 FROM {s}.runs r WHERE r.run_id = v_parent FOR UPDATE;
        PERFORM pg_advisory_xact_lock({MESSAGE_LOCK});
        SELECT greatest(
            coalesce((SELECT max(v.seq) FROM {s}.events v WHERE v.position IS NULL), 0),
            coalesce((SELECT m.value FROM {s}.journal_marks m WHERE m.name = 'unpositioned'), 0),
            coalesce((SELECT max(v.seq) FROM {s}.events v WHERE v.run_id = v_parent), 0)) + 1
            INTO v_seq;
        INSERT INTO {s}.events (run_id, seq, position, kind, name, payload, created_at)
            VALUES (v_parent, v_seq, NULL, 'message', 'child:' || v_child,
                    '{{"status":"' || v_status || '"}}', v_updated);
    END LOOP;
    PERFORM {s}.finish_batch(p_writer, p_batch, p_channel);
END
$fn$;
"""


_OWNED_AT_LEAST = 3


def owned(args: tuple[Any, ...]) -> bool:
    """Whether ``append_owned`` can take a write (``append_args``): an owner journaling
    its run's progress or its end, its events in positions, no reset or release."""
    _, owner, active, wait, _, _, _, _, _, reset, release, if_active = args[:12]
    return (
        owner is not None
        and active is None
        and wait is None
        and not reset
        and not release
        and if_active
        and None not in args[12]
    )


def owned_args(writes: Sequence[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """``append_owned``'s parameters for a batch of writes (but the batch marker), or
    None unless ``owned`` takes every one and they are one owner's. Not for two writes
    or fewer (a sequential step's): a pipeline of two ``append`` calls costs less."""
    if len(writes) < _OWNED_AT_LEAST or not all(owned(write) for write in writes):
        return None
    if len({write[1] for write in writes}) > 1:
        return None
    ended: set[str] = set()
    for write in writes:
        if write[0] in ended:  # a write after the run's end: append refuses it
            return None
        if write[5] in TERMINAL:
            ended.add(write[0])
    event_writes: list[int] = []
    for number, write in enumerate(writes, start=1):
        event_writes += [number] * len(write[13])
    return (
        writes[0][1],
        [write[0] for write in writes],
        [write[4] for write in writes],
        [write[5] for write in writes],
        [write[8] for write in writes],
        [write[6] for write in writes],
        [write[7] for write in writes],
        event_writes,
        [position for write in writes for position in write[12]],
        [kind for write in writes for kind in write[13]],
        [name for write in writes for name in write[14]],
        [payload for write in writes for payload in write[15]],
        [created for write in writes for created in write[16]],
    )


def owned_rows(row: Any, writes: Sequence[tuple[Any, ...]]) -> list[tuple[Any, Any, Any]]:
    """``append_owned``'s answer as one ``append`` row per write."""
    refused, details, seqs = row
    rows: list[tuple[Any, Any, Any]] = []
    taken = 0
    for write, why, detail in zip(writes, refused, details, strict=True):
        if why is not None:
            rows.append((why, detail, []))
            continue
        count = len(write[13])
        rows.append((None, None, seqs[taken : taken + count]))
        taken += count
    return rows


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


def create_runs_function(schema: str) -> str:
    """``create_runs``: the new runs of a batch in one call.

    A run id given twice in the batch is created once, by its first start; a run id
    whose events outlived its row (``p_check_orphans``: a caller's own id) is not
    created. ``outcomes`` says for each start, in order: ``created``, ``exists``
    or ``orphaned``."""
    s = f'"{schema}"'
    return f"""
CREATE OR REPLACE FUNCTION {s}.create_runs(
    p_ids text[], p_workflows text[], p_versions text[], p_statuses text[], p_digests text[],
    p_outputs text[], p_errors text[], p_owners text[], p_created double precision[],
    p_updated double precision[], p_parents text[], p_deadlines double precision[],
    p_queues text[], p_priorities integer[], p_dedup_keys text[], p_traces text[],
    p_inputs text[], p_check_orphans boolean[],
    p_writer text, p_batch bigint, p_channel text,
    OUT outcomes text[])
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
DECLARE
    v_orphaned text[];
    v_inserted text[];
BEGIN
    SELECT coalesce(array_agg(DISTINCT w.id), '{{}}') INTO v_orphaned
        FROM unnest(p_ids, p_check_orphans) AS w(id, check_orphans)
        WHERE w.check_orphans
        AND EXISTS (SELECT 1 FROM {s}.events e WHERE e.run_id = w.id)
        AND NOT EXISTS (SELECT 1 FROM {s}.runs r WHERE r.run_id = w.id);
    WITH w AS (
        SELECT DISTINCT ON (w.id) w.* FROM unnest(
            p_ids, p_workflows, p_versions, p_statuses, p_digests, p_outputs, p_errors,
            p_owners, p_created, p_updated, p_parents, p_deadlines, p_queues, p_priorities,
            p_dedup_keys, p_traces) WITH ORDINALITY AS w(id, workflow, version, status,
            digest, output, error, owner, created, updated, parent, deadline, queue, priority,
            dedup_key, trace, n)
        WHERE NOT w.id = ANY(v_orphaned) ORDER BY w.id, w.n),
    inserted AS (
        INSERT INTO {s}.runs (run_id, workflow, version, status, input_digest, output, error,
            owner, created_at, updated_at, parent_run_id, deadline, queue, priority, dedup_key,
            trace)
        SELECT w.id, w.workflow, w.version, w.status, w.digest, w.output, w.error, w.owner,
            w.created, w.updated, w.parent, w.deadline, w.queue, w.priority, w.dedup_key,
            w.trace
        FROM w ORDER BY w.id
        ON CONFLICT (run_id) DO NOTHING RETURNING run_id)
    SELECT coalesce(array_agg(i.run_id), '{{}}') INTO v_inserted FROM inserted i;
    -- The input of a run whose row was deleted by hand may still be there.
    INSERT INTO {s}.run_inputs (run_id, input)
        SELECT DISTINCT ON (w.id) w.id, w.input
        FROM unnest(p_ids, p_inputs) WITH ORDINALITY AS w(id, input, n)
        WHERE w.id = ANY(v_inserted) ORDER BY w.id, w.n
        ON CONFLICT (run_id) DO UPDATE SET input = excluded.input;
    SELECT array_agg(CASE
            WHEN w.id = ANY(v_orphaned) THEN 'orphaned'
            WHEN w.id = ANY(v_inserted) AND w.n = (SELECT min(x.n) FROM unnest(p_ids)
                WITH ORDINALITY AS x(id, n) WHERE x.id = w.id) THEN 'created'
            ELSE 'exists' END ORDER BY w.n)
        INTO outcomes FROM unnest(p_ids) WITH ORDINALITY AS w(id, n);
    PERFORM {s}.finish_batch(p_writer, p_batch, p_channel);
END
$fn$;
"""


def create_args(run: RunRecord, check_orphans: bool) -> tuple[Any, ...]:
    """One start's share of ``create_runs``' parameters."""
    return (
        run.run_id,
        run.workflow,
        run.version,
        run.status,
        run.input_digest,
        run.output,
        run.error,
        run.owner,
        run.created_at,
        run.updated_at,
        run.parent_run_id,
        run.deadline,
        run.queue,
        run.priority,
        run.dedup_key,
        run.trace,
        run.input,
        check_orphans,
    )


def create_group_args(starts: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """``create_runs``' parameters, but the batch marker: one array per column."""
    return tuple(list(column) for column in zip(*starts, strict=True))


def create_group_rows(row: Any, starts: Sequence[tuple[Any, ...]]) -> list[str]:
    return list(row[0])
