-- A newer batch of a table whose content is an older batch's (daily full exports of a value going
-- ON, OFF, then ON again: day 3 has day 1's bytes) is merged again, so its values are the ones
-- that stay: one content can now be 'loaded' more than once per table. One path still loads a
-- given content once (a re-drop of a loaded file is a duplicate: its batch is never newer than
-- the batches loaded), which is what the unique index keeps guarding; it also serves the
-- ledger's look-ups by (table_name, checksum).
DROP INDEX funnelhouse.ingest_files_loaded_once;
CREATE UNIQUE INDEX ingest_files_loaded_once_per_path ON funnelhouse.ingest_files (table_name, checksum, path)
    WHERE status = 'loaded';
