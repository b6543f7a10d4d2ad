-- A run's spend (budget.charged) and budget raises (budget.raised), found without
-- reading the rest of its journal: a budget is checked before each step.
CREATE INDEX events_spend ON events (run_id, seq)
    WHERE kind IN ('budget.charged', 'budget.raised');
