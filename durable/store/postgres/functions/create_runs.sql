-- create_runs: the new runs of a batch in one call.
--
-- A run id given twice in the batch is created once, by its first start; a run id
-- whose events outlived its row (p_check_orphans: a caller's own id) is not
-- created. outcomes says for each start, in order: created, exists or orphaned.
CREATE OR REPLACE FUNCTION :"schema".create_runs(
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
    SELECT coalesce(array_agg(DISTINCT w.id), '{}') INTO v_orphaned
        FROM unnest(p_ids, p_check_orphans) AS w(id, check_orphans)
        WHERE w.check_orphans
        AND EXISTS (SELECT 1 FROM :"schema".events e WHERE e.run_id = w.id)
        AND NOT EXISTS (SELECT 1 FROM :"schema".runs r WHERE r.run_id = w.id);
    WITH w AS (
        SELECT DISTINCT ON (w.id) w.* FROM unnest(
            p_ids, p_workflows, p_versions, p_statuses, p_digests, p_outputs, p_errors,
            p_owners, p_created, p_updated, p_parents, p_deadlines, p_queues, p_priorities,
            p_dedup_keys, p_traces) WITH ORDINALITY AS w(id, workflow, version, status,
            digest, output, error, owner, created, updated, parent, deadline, queue, priority,
            dedup_key, trace, n)
        WHERE NOT w.id = ANY(v_orphaned) ORDER BY w.id, w.n),
    inserted AS (
        INSERT INTO :"schema".runs (run_id, workflow, version, status, input_digest, output, error,
            owner, created_at, updated_at, parent_run_id, deadline, queue, priority, dedup_key,
            trace)
        SELECT w.id, w.workflow, w.version, w.status, w.digest, w.output, w.error, w.owner,
            w.created, w.updated, w.parent, w.deadline, w.queue, w.priority, w.dedup_key,
            w.trace
        FROM w ORDER BY w.id
        ON CONFLICT (run_id) DO NOTHING RETURNING run_id)
    SELECT coalesce(array_agg(i.run_id), '{}') INTO v_inserted FROM inserted i;
    -- The input of a run whose row was deleted by hand may still be there.
    INSERT INTO :"schema".run_inputs (run_id, input)
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
    PERFORM :"schema".finish_batch(p_writer, p_batch, p_channel);
END
$fn$;
