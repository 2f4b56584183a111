-- 1. A file whose load rejected rows can be applied again.
--
-- Rows rejected because an upstream file had failed (a tag not loaded yet) load once the upstream
-- file is fixed and the same content is dropped again, under its name (`funnelhouse ingest PATH`)
-- or a new one: a load with rejects no longer makes its content a duplicate (ingestion.load.ledger).
-- So one content may be 'loaded' more than once at one path; what stays unique is a clean load
-- (every row loaded), which a re-drop of the same content never repeats.
DROP INDEX funnelhouse.ingest_files_loaded_once_per_path;
CREATE UNIQUE INDEX ingest_files_loaded_cleanly_once_per_path
    ON funnelhouse.ingest_files (table_name, checksum, path)
    WHERE status = 'loaded' AND rows_rejected = 0;
CREATE INDEX ingest_files_content ON funnelhouse.ingest_files (table_name, checksum);

-- 2. Checksums of the landing files' versions hashed so far, by path, size and modification stamp.
--
-- The sensor decides what is pending by content, so it hashes every file the ledger has no row of
-- that exact version of: a backlog of unloaded files, or a loaded folder merely touched, was read in
-- full on every tick (on S3, a large backlog outlasted the tick's timeout and nothing was ever
-- requested). Each version is now hashed once; a row is written as soon as its file is hashed, so a
-- tick cut short keeps what it hashed. Rows of files gone are harmless (a few hundred bytes each).
CREATE TABLE funnelhouse.landing_checksums (
    path TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    modified TEXT NOT NULL,
    checksum CHAR(64) NOT NULL,
    hashed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (path, size_bytes, modified)
);
