-- Composition: a child run names its parent, a run may have a deadline, and a
-- message sent with a key is kept once per run.
ALTER TABLE :"schema".runs ADD COLUMN parent_run_id text;
ALTER TABLE :"schema".runs ADD COLUMN deadline double precision;
CREATE INDEX runs_by_parent ON :"schema".runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
CREATE TABLE :"schema".message_keys (
    run_id text NOT NULL,
    key    text NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (run_id, key)
);
