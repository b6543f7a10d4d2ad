-- append_owned: a batch of owners' writes in one call, a statement per table instead
-- of a function call per write (most writes are a run's owner journaling its
-- progress, or its end). What it refuses and writes is what append would, write by
-- write: a run gone, claimed since the write's claim, or ended refuses every write of it in the
-- batch (the caller sends no write of a run after the one that ends it); a child's
-- end is told to its parent.
--
-- The writes come as parallel arrays; p_event_writes says which write each event
-- belongs to (in order). seqs holds the new events' seqs in order, none for the
-- refused writes. Its parameters up to p_created are also append_owned_admit's.
CREATE OR REPLACE FUNCTION :"schema".append_owned(
    p_claims text[], p_runs text[], p_has_update boolean[], p_statuses text[],
    p_updated double precision[], p_outputs text[], p_errors text[],
    p_event_writes integer[], p_positions integer[], p_kinds text[], p_names text[],
    p_payloads text[], p_created double precision[],
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
        SELECT r.run_id, r.status, r.owner || '@' || r.epoch AS claim FROM :"schema".runs r
        WHERE r.run_id = ANY(p_runs) ORDER BY r.run_id FOR UPDATE)
    SELECT array_agg(CASE WHEN l.run_id IS NULL THEN 'deleted'
                          WHEN l.claim IS DISTINCT FROM w.claim THEN 'lease_lost'
                          WHEN l.status IN ('cancelled', 'completed', 'failed') THEN 'ended' END ORDER BY w.n),
           array_agg(CASE WHEN l.run_id IS NULL THEN NULL
                          WHEN l.claim IS DISTINCT FROM w.claim THEN l.claim
                          WHEN l.status IN ('cancelled', 'completed', 'failed') THEN l.status END ORDER BY w.n)
        INTO refused, details
        FROM unnest(p_runs, p_claims) WITH ORDINALITY AS w(run_id, claim, n)
        LEFT JOIN locked l ON l.run_id = w.run_id;
    UPDATE :"schema".runs r SET updated_at = u.updated, status = coalesce(u.status, r.status),
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
    WHERE r.run_id = u.run_id AND r.status NOT IN ('cancelled', 'completed', 'failed');
    WITH e AS (
        SELECT p_runs[x.w] AS run_id, x.k, x.position, x.kind, x.name, x.payload, x.created
        FROM unnest(p_event_writes, p_positions, p_kinds, p_names, p_payloads, p_created)
             WITH ORDINALITY AS x(w, position, kind, name, payload, created, k)
        WHERE refused[x.w] IS NULL),
    numbered AS (
        SELECT e.*, coalesce((SELECT max(v.seq) FROM :"schema".events v WHERE v.run_id = e.run_id), 0)
            + row_number() OVER (PARTITION BY e.run_id ORDER BY e.k) AS seq
        FROM e),
    inserted AS (
        INSERT INTO :"schema".events (run_id, seq, position, kind, name, payload, created_at)
        SELECT n.run_id, n.seq, n.position, n.kind, n.name, n.payload, n.created FROM numbered n)
    SELECT coalesce(array_agg(n.seq ORDER BY n.k), '{}') INTO seqs FROM numbered n;
    -- A child's end is told to its parent in this transaction (as append does),
    -- after the batch's own events, as the writes came.
    SELECT array_agg(w.run_id) INTO v_ended FROM unnest(p_runs, p_statuses, refused)
        AS w(run_id, status, refused) WHERE w.status IN ('cancelled', 'completed', 'failed') AND w.refused IS NULL;
    FOR v_child, v_parent, v_status, v_updated IN
        SELECT r.run_id, r.parent_run_id, r.status, r.updated_at FROM :"schema".runs r
        WHERE r.run_id = ANY(v_ended) AND r.parent_run_id IS NOT NULL ORDER BY r.run_id
    LOOP
        PERFORM 1 FROM :"schema".runs r WHERE r.run_id = v_parent FOR UPDATE;
        PERFORM pg_advisory_xact_lock(7213931000001);
        SELECT greatest(
            coalesce((SELECT max(v.seq) FROM :"schema".events v WHERE v.position IS NULL), 0),
            coalesce((SELECT m.value FROM :"schema".journal_marks m WHERE m.name = 'unpositioned'), 0),
            coalesce((SELECT max(v.seq) FROM :"schema".events v WHERE v.run_id = v_parent), 0)) + 1
            INTO v_seq;
        INSERT INTO :"schema".events (run_id, seq, position, kind, name, payload, created_at)
            VALUES (v_parent, v_seq, NULL, 'message', 'child:' || v_child,
                    '{"status":"' || v_status || '"}', v_updated);
    END LOOP;
    PERFORM :"schema".finish_batch(p_writer, p_batch, p_channel);
END
$fn$;
