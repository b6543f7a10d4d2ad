-- runs_active with its condition spelled as comparisons, not NOT IN (queries repeat
-- it to use the index: _sqlite_schema._ACTIVE), and without lease_until.
DROP INDEX IF EXISTS runs_active;
CREATE INDEX runs_active ON runs (owner)
    WHERE (status != 'cancelled' AND status != 'completed' AND status != 'failed');
