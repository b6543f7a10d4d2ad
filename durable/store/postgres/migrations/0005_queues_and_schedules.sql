-- Queues and schedules: a run's queue, priority and dedup key, when it was
-- admitted, and the cron schedules seen on the journal.
ALTER TABLE :"schema".runs ADD COLUMN queue text;
ALTER TABLE :"schema".runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE :"schema".runs ADD COLUMN dedup_key text;
ALTER TABLE :"schema".runs ADD COLUMN admitted_at double precision;
CREATE INDEX runs_queued ON :"schema".runs (queue, priority, created_at, run_id)
    WHERE status = 'queued';
CREATE INDEX runs_in_queue ON :"schema".runs (queue, admitted_at)
    WHERE queue IS NOT NULL;
CREATE INDEX runs_holding_slots ON :"schema".runs (queue, owner)
    WHERE queue IS NOT NULL AND status <> 'queued'
    AND status NOT IN ('cancelled', 'completed', 'failed');
CREATE UNIQUE INDEX runs_dedup ON :"schema".runs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND status NOT IN ('cancelled', 'completed', 'failed');
CREATE TABLE :"schema".schedules (
    workflow   text PRIMARY KEY,
    cron       text NOT NULL,
    tz         text NOT NULL,
    first_seen double precision NOT NULL,
    last_tick  double precision
);
