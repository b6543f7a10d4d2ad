-- Composition: a child run names its parent, a run may have a deadline, and a
-- message sent with a key is kept once per run.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN deadline REAL;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE TABLE message_keys (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
