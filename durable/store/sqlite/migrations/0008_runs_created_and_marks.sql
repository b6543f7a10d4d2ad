-- Paging through runs newest first without sorting the table, and the seq the next
-- event without a position must follow, kept apart from the events so that pruning
-- the newest such event cannot number a new one lower than a cursor that passed it.
CREATE INDEX runs_created ON runs (created_at DESC, run_id);
CREATE TABLE journal_marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
