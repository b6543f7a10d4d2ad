-- Events keyed by (run_id, seq): a run's journal lies together in one B-tree, so an
-- append writes one page. seq is now numbered per run by the writer, the numbers
-- already written are kept.
CREATE TABLE events_v5 (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    position   INTEGER,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
INSERT INTO events_v5 (run_id, seq, position, kind, name, payload, created_at, superseded)
    SELECT run_id, seq, position, kind, name, payload, created_at, superseded FROM events;
DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;
CREATE INDEX events_unpositioned ON events (seq) WHERE position IS NULL;
