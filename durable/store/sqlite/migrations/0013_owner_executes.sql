-- What each runtime holding a lease executes (a digest of its workflows and versions):
-- runtimes share free runs only with the runtimes that execute the same workflows.
ALTER TABLE owners ADD COLUMN executes TEXT;
