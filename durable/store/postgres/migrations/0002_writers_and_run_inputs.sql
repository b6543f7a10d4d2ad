-- Each group-commit writer's last committed batch, and a run's input apart from
-- the row each status change rewrites.
CREATE TABLE :"schema".writers (
    writer text PRIMARY KEY,
    batch  bigint NOT NULL
);
CREATE TABLE :"schema".run_inputs (
    run_id text PRIMARY KEY,
    input  text NOT NULL
);
INSERT INTO :"schema".run_inputs (run_id, input) SELECT run_id, input FROM :"schema".runs;
ALTER TABLE :"schema".runs DROP COLUMN input;
