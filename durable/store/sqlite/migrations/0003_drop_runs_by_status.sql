-- Every status change moved an entry of this index: two or three more pages per
-- commit. Listing by an unfinished status uses runs_active instead, listing by a
-- finished one scans, as sorting by creation time needed anyway.
DROP INDEX IF EXISTS runs_by_status;
