-- The first journal: runs, their events, and the owners' leases.
CREATE TABLE :"schema".runs (
    run_id       text PRIMARY KEY,
    workflow     text NOT NULL,
    version      text,
    status       text NOT NULL,
    input        text NOT NULL,
    input_digest text NOT NULL,
    output       text,
    error        text,
    owner        text,
    lease_until  double precision,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL
);
CREATE INDEX runs_active ON :"schema".runs (owner)
    WHERE status NOT IN ('cancelled', 'completed', 'failed');
CREATE INDEX runs_created ON :"schema".runs (created_at DESC, run_id);
CREATE TABLE :"schema".events (
    run_id     text NOT NULL,
    seq        bigint NOT NULL,
    position   integer,
    kind       text NOT NULL,
    name       text NOT NULL,
    payload    text NOT NULL,
    created_at double precision NOT NULL,
    superseded boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX events_unpositioned ON :"schema".events (seq) WHERE position IS NULL;
CREATE TABLE :"schema".owners (
    owner       text PRIMARY KEY,
    lease_until double precision NOT NULL
);
