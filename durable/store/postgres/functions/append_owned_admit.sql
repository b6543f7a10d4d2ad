-- append_owned_admit: append_owned's writes, then admit, in one call (its parameters:
-- both functions' but their batch markers, then the marker). Its rows are admit's,
-- each led by append_owned's answer: a run's end and the admission behind it, which
-- hands its slot on, commit together in one round trip.
CREATE OR REPLACE FUNCTION :"schema".append_owned_admit(
    p_claims text[], p_runs text[], p_has_update boolean[], p_statuses text[],
    p_updated double precision[], p_outputs text[], p_errors text[],
    p_event_writes integer[], p_positions integer[], p_kinds text[], p_names text[],
    p_payloads text[], p_created double precision[],
    a_owner text, a_now double precision, a_limit integer, a_queues text[], a_locks text[],
    a_concurrency integer[], a_per_runtime integer[], a_rate_n integer[],
    a_rate_s double precision[], a_workflows text[], a_versions text[],
    p_writer text, p_batch bigint, p_channel text)
RETURNS TABLE (w_refused text[], w_details text[], w_seqs bigint[], 
    o_retry_at double precision, o_fresh boolean, o_run_id text, o_workflow text,
    o_version text, o_status text, o_input text, o_input_digest text, o_output text,
    o_error text, o_owner text, o_lease_until double precision,
    o_created_at double precision, o_updated_at double precision, o_parent_run_id text,
    o_deadline double precision, o_queue text, o_priority integer, o_dedup_key text,
    o_trace text, o_epoch bigint)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
DECLARE
    w record;
BEGIN
    SELECT * INTO w FROM :"schema".append_owned(p_claims, p_runs, p_has_update, p_statuses,
        p_updated, p_outputs, p_errors, p_event_writes, p_positions, p_kinds, p_names,
        p_payloads, p_created, NULL, NULL, NULL);
    RETURN QUERY SELECT w.refused, w.details, w.seqs, a.* FROM :"schema".admit(a_owner, a_now,
        a_limit, a_queues, a_locks, a_concurrency, a_per_runtime, a_rate_n, a_rate_s,
        a_workflows, a_versions, p_writer, p_batch, p_channel) a;
END
$fn$;
