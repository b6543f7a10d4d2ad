-- Inputs in a table of their own: SQLite rewrites a whole row on every UPDATE, so a
-- large input was written again at each status change.
CREATE TABLE run_inputs (run_id TEXT PRIMARY KEY, input TEXT NOT NULL);
INSERT INTO run_inputs (run_id, input) SELECT run_id, input FROM runs;
ALTER TABLE runs DROP COLUMN input;
