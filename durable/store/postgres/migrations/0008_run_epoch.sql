-- A run's ownership epoch: raised each time the run changes hands, so that a write
-- from an earlier owner can be told apart from the current owner's.
ALTER TABLE :"schema".runs ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
