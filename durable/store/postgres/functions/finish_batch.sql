-- A group-commit writer's last committed batch, by which it learns whether a batch
-- whose connection broke committed (writer.py), and the notification of it.
CREATE OR REPLACE FUNCTION :"schema".finish_batch(p_writer text, p_batch bigint, p_channel text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_writer IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO :"schema".writers VALUES (p_writer, p_batch)
        ON CONFLICT (writer) DO UPDATE SET batch = excluded.batch;
    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, p_writer);
    END IF;
END
$fn$;
