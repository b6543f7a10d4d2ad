-- One lease per runtime instead of one per run: renewing rewrote every unfinished
-- run's row. runs.lease_until is no longer written, reads take the owner's lease.
CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, lease_until REAL NOT NULL);
INSERT OR IGNORE INTO owners (owner, lease_until)
    SELECT owner, max(lease_until) FROM runs
    WHERE owner IS NOT NULL AND lease_until IS NOT NULL GROUP BY owner;
