-- The seq that events without a position must follow, kept when the newest of
-- them is pruned.
CREATE TABLE :"schema".journal_marks (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
