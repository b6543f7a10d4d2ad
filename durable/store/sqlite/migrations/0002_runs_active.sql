-- Unfinished runs by owner and lease: what claiming and lease renewal look up.
CREATE INDEX IF NOT EXISTS runs_active ON runs (owner, lease_until)
    WHERE status NOT IN ('cancelled', 'completed', 'failed');
