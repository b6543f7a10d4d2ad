-- admit: one call takes each queue's advisory lock (QUEUE_LOCK in functions.py),
-- counts the slots held and the rate window, and takes the next queued runs
-- (_pg_leases.admit says why). Each statement of a plpgsql function sees what
-- committed before it began, so the counts after the lock see every admission that
-- held it before. Its rows: when a rate window lets the next run in, whether the
-- run never ran, and the run as _pg_functions.RUN_COLUMNS reads it (change both).
CREATE OR REPLACE FUNCTION :"schema".admit(
    p_owner text, p_now double precision, p_limit integer, p_queues text[], p_locks text[],
    p_concurrency integer[], p_per_runtime integer[], p_rate_n integer[],
    p_rate_s double precision[], p_workflows text[], p_versions text[])
RETURNS TABLE (
    o_retry_at double precision, o_fresh boolean, o_run_id text, o_workflow text,
    o_version text, o_status text, o_input text, o_input_digest text, o_output text,
    o_error text, o_owner text, o_lease_until double precision,
    o_created_at double precision, o_updated_at double precision, o_parent_run_id text,
    o_deadline double precision, o_queue text, o_priority integer, o_dedup_key text,
    o_trace text, o_epoch bigint)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
DECLARE
    taken text[] := '{}';
    fresh text[] := '{}';
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
            SELECT 1 FROM :"schema".runs r WHERE r.status = 'queued' AND r.queue = p_queues[i]);
        PERFORM pg_advisory_xact_lock(7213931, hashtext(p_locks[i]));
        SELECT count(*), count(*) FILTER (WHERE r.owner = p_owner) INTO v_running, v_mine
            FROM :"schema".runs r WHERE r.queue = p_queues[i] AND r.queue IS NOT NULL
            AND r.status <> 'queued' AND r.status NOT IN ('cancelled', 'completed', 'failed');
        v_room := p_limit - coalesce(array_length(taken, 1), 0);
        IF p_concurrency[i] IS NOT NULL THEN
            v_room := least(v_room, p_concurrency[i] - v_running);
        END IF;
        IF p_per_runtime[i] IS NOT NULL THEN
            v_room := least(v_room, p_per_runtime[i] - v_mine);
        END IF;
        v_window := NULL;
        IF p_rate_n[i] IS NOT NULL THEN
            SELECT count(*), min(r.admitted_at) INTO v_started, v_oldest FROM :"schema".runs r
                WHERE r.queue = p_queues[i] AND r.admitted_at > p_now - p_rate_s[i];
            IF p_rate_n[i] - v_started <= v_room THEN
                v_room := p_rate_n[i] - v_started;
                v_window := coalesce(v_oldest, p_now) + p_rate_s[i];
            END IF;
        END IF;
        CONTINUE WHEN v_room <= 0 AND v_window IS NULL;
        SELECT coalesce(array_agg(q.run_id ORDER BY q.priority, q.created_at, q.run_id), '{}')
            INTO v_ids FROM (
                SELECT r.run_id, r.priority, r.created_at FROM :"schema".runs r
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
        UPDATE :"schema".runs r SET status = 'pending', owner = p_owner, admitted_at = p_now,
            epoch = r.epoch + 1 WHERE r.run_id = ANY(v_ids);
        fresh := fresh || ARRAY(SELECT x FROM unnest(v_ids) x WHERE NOT EXISTS
            (SELECT 1 FROM :"schema".events e WHERE e.run_id = x));
        taken := taken || v_ids;
    END LOOP;
    -- The runs as they are now (a statement of the caller's would see them as they were
    -- before this call, and not at all a run queued meanwhile); a first row with no run
    -- when none was taken, for retry_at.
    RETURN QUERY SELECT retry_at, runs.run_id = ANY(fresh),
        runs.run_id, workflow, version, status, run_inputs.input, input_digest, output, error,
        runs.owner, owners.lease_until, created_at, updated_at, parent_run_id, deadline,
        queue, priority, dedup_key, trace, runs.epoch
        FROM unnest(taken) WITH ORDINALITY AS t(id, n)
        JOIN :"schema".runs ON runs.run_id = t.id
        JOIN :"schema".run_inputs ON run_inputs.run_id = runs.run_id
        LEFT JOIN :"schema".owners ON owners.owner = runs.owner ORDER BY t.n;
    IF NOT FOUND THEN
        o_retry_at := retry_at;
        RETURN NEXT;
    END IF;
END
$fn$;
