-- Queues and schedules: a run's queue, priority and dedup key, when it was admitted
-- (rate windows count admissions), and the cron schedules seen on the journal.
ALTER TABLE runs ADD COLUMN queue TEXT;
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN dedup_key TEXT;
ALTER TABLE runs ADD COLUMN admitted_at REAL;
CREATE INDEX runs_queued ON runs (queue, priority, created_at, run_id)
    WHERE status = 'queued';
CREATE INDEX runs_in_queue ON runs (queue, admitted_at) WHERE queue IS NOT NULL;
CREATE INDEX runs_holding_slots ON runs (queue, owner)
    WHERE queue IS NOT NULL AND status != 'queued'
    AND (status != 'cancelled' AND status != 'completed' AND status != 'failed');
CREATE UNIQUE INDEX runs_dedup ON runs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL
    AND (status != 'cancelled' AND status != 'completed' AND status != 'failed');
CREATE TABLE schedules (
    workflow   TEXT PRIMARY KEY,
    cron       TEXT NOT NULL,
    tz         TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_tick  REAL
);
