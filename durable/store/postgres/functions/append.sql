-- append: one write of a run, every journal write's one function (functions.py).
-- It locks the run's row, checks what the write expects (held under the writer's
-- claim, still unfinished, a wait still unanswered), updates the run (a child's end is
-- told to its parent) and numbers the events: seq counts up within a run, and an event
-- without a position also follows every earlier such event of any run, under
-- MESSAGE_LOCK (functions.py). The events get consecutive seqs from first_seq on
-- (null: none added). A refused write returns why and writes nothing.
--
-- A start (p_workflow not null) writes the run's row instead, with p_status, p_output,
-- p_error and p_updated: refused as 'exists' if the id has a row, and, when
-- p_check_orphans (an id the caller chose), as 'orphaned' if its events outlived its row.
CREATE OR REPLACE FUNCTION :"schema".append(
    p_run text, p_claim text, p_expect_active boolean, p_pending_wait text,
    p_has_update boolean, p_status text, p_output text, p_error text,
    p_updated double precision, p_reset boolean, p_release boolean, p_only_if_active boolean,
    p_positions integer[], p_kinds text[], p_names text[], p_payloads text[],
    p_created double precision[],
    p_workflow text, p_version text, p_input text, p_input_digest text, p_owner text,
    p_created_at double precision, p_parent text, p_deadline double precision, p_queue text,
    p_priority integer, p_dedup_key text, p_trace text, p_check_orphans boolean,
    OUT refused text, OUT detail text, OUT first_seq bigint)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
DECLARE
    v_status text;
    v_claim text;
    v_last bigint;
    v_unpositioned bigint := NULL;
    v_parent text;
    v_parent_last bigint;
BEGIN
    IF p_workflow IS NOT NULL THEN
        IF p_check_orphans AND NOT EXISTS (SELECT 1 FROM :"schema".runs WHERE run_id = p_run)
            AND EXISTS (SELECT 1 FROM :"schema".events WHERE run_id = p_run) THEN
            refused := 'orphaned';
            RETURN;
        END IF;
        INSERT INTO :"schema".runs (run_id, workflow, version, status, input_digest, output,
            error, owner, created_at, updated_at, parent_run_id, deadline, queue, priority,
            dedup_key, trace)
        VALUES (p_run, p_workflow, p_version, p_status, p_input_digest, p_output, p_error,
            p_owner, p_created_at, p_updated, p_parent, p_deadline, p_queue, p_priority,
            p_dedup_key, p_trace)
        ON CONFLICT (run_id) DO NOTHING;
        IF NOT FOUND THEN
            refused := 'exists';
            RETURN;
        END IF;
        -- The input of a run whose row was deleted by hand may still be there.
        INSERT INTO :"schema".run_inputs (run_id, input) VALUES (p_run, p_input)
            ON CONFLICT (run_id) DO UPDATE SET input = excluded.input;
        RETURN;
    END IF;
    SELECT status, owner || '@' || epoch INTO v_status, v_claim FROM :"schema".runs
        WHERE run_id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        IF p_claim IS NOT NULL THEN
            refused := 'deleted';
            RETURN;
        END IF;
        IF p_expect_active IS NOT NULL THEN
            refused := 'not_found';
            RETURN;
        END IF;
    END IF;
    IF p_claim IS NOT NULL AND v_claim IS DISTINCT FROM p_claim THEN
        refused := 'lease_lost';
        detail := v_claim;
        RETURN;
    END IF;
    IF (p_claim IS NOT NULL OR p_expect_active) AND v_status IN ('cancelled', 'completed', 'failed') THEN
        refused := 'ended';
        detail := v_status;
        RETURN;
    END IF;
    IF p_pending_wait IS NOT NULL THEN
        -- Nested: an IF whose condition holds subqueries starts them on every call.
        IF NOT (
            EXISTS (
                SELECT 1 FROM :"schema".events w WHERE w.run_id = p_run AND w.kind = 'wait.started'
                AND w.name = p_pending_wait AND NOT w.superseded AND NOT EXISTS (
                    SELECT 1 FROM :"schema".events c WHERE c.run_id = p_run AND c.position = w.position
                    AND c.kind = 'wait.completed' AND NOT c.superseded))
            -- A wait id names one position: with its wait not completed, no message of its
            -- name was consumed, so any one is an answer not yet read (Expect, journal/records.py). No
            -- payload is read: one holding U+0000 is text jsonb refuses.
            AND NOT EXISTS (
                SELECT 1 FROM :"schema".events m WHERE m.run_id = p_run AND m.kind = 'message'
                AND m.name = p_pending_wait)
        ) THEN
            refused := 'wait_answered';
            RETURN;
        END IF;
    END IF;
    IF p_has_update THEN
        UPDATE :"schema".runs SET
            updated_at = p_updated,
            status = coalesce(p_status, status),
            output = CASE WHEN p_output IS NOT NULL THEN p_output
                          WHEN p_reset THEN NULL ELSE output END,
            error = CASE WHEN p_error IS NOT NULL THEN p_error
                         WHEN p_reset THEN NULL ELSE error END,
            owner = CASE WHEN p_release THEN NULL ELSE owner END,
            lease_until = CASE WHEN p_release THEN NULL ELSE lease_until END
        WHERE run_id = p_run AND (NOT p_only_if_active OR status NOT IN ('cancelled', 'completed', 'failed'))
        RETURNING parent_run_id INTO v_parent;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        -- A child's end, whatever ended it, is told to its parent in this transaction.
        IF v_parent IS NOT NULL AND p_status IN ('cancelled', 'completed', 'failed') THEN
            PERFORM 1 FROM :"schema".runs WHERE run_id = v_parent FOR UPDATE;
            PERFORM pg_advisory_xact_lock(7213931000001);
            SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT value
                FROM :"schema".journal_marks WHERE name = 'unpositioned'), 0))
                INTO v_unpositioned FROM :"schema".events WHERE position IS NULL;
            SELECT coalesce(max(seq), 0) INTO v_parent_last FROM :"schema".events
                WHERE run_id = v_parent;
            v_unpositioned := greatest(v_unpositioned, v_parent_last) + 1;
            INSERT INTO :"schema".events (run_id, seq, position, kind, name, payload, created_at)
                VALUES (v_parent, v_unpositioned, NULL, 'message', 'child:' || p_run,
                        '{"status":"' || p_status || '"}', p_updated);
        END IF;
    END IF;
    IF coalesce(array_length(p_kinds, 1), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT coalesce(max(seq), 0) INTO v_last FROM :"schema".events WHERE run_id = p_run;
    -- An event without a position: every event of the write follows every such event.
    IF array_position(p_positions, NULL) IS NOT NULL THEN
        IF v_unpositioned IS NULL THEN
            PERFORM pg_advisory_xact_lock(7213931000001);
            SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT value
                FROM :"schema".journal_marks WHERE name = 'unpositioned'), 0))
                INTO v_unpositioned FROM :"schema".events WHERE position IS NULL;
        END IF;
        v_last := greatest(v_last, v_unpositioned);
    END IF;
    INSERT INTO :"schema".events (run_id, seq, position, kind, name, payload, created_at)
        SELECT p_run, v_last + e.n, e.position, e.kind, e.name, e.payload, e.created
        FROM unnest(p_positions, p_kinds, p_names, p_payloads, p_created)
            WITH ORDINALITY AS e(position, kind, name, payload, created, n);
    first_seq := v_last + 1;
END
$fn$;
