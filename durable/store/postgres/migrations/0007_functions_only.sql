-- Version 7 changed only the journal's functions, which are no longer part of a
-- migration: they are installed from ../functions/*.sql by content hash.
SELECT 1;
