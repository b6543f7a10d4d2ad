-- The first journal: runs and their events.
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    version      TEXT,
    status       TEXT NOT NULL,
    input        TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    output       TEXT,
    error        TEXT,
    owner        TEXT,
    lease_until  REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, workflow);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    run_id     TEXT NOT NULL,
    position   INTEGER,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq);
CREATE INDEX IF NOT EXISTS events_unpositioned ON events (seq) WHERE position IS NULL;
