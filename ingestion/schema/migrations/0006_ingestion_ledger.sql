-- Ingestion bookkeeping (issue 3): which landing file was loaded when, and every row refused.
--
-- ingest_files is the ledger that makes ingestion exactly-once: a file's row is written in the
-- same transaction as its data, so it exists if and only if the data committed. A content
-- checksum can be 'loaded' only once per table (partial unique index), which is what recognises
-- the same content dropped again under a new name. 'failed' rows (malformed file, or every row
-- rejected) are written after the rollback so an operator sees them; 'duplicate' rows record a
-- re-drop of content already loaded.
--
-- ingest_rejects keeps each refused row with the rule it broke, in words, and its raw values,
-- written in the same transaction as the file's good rows: rows in = loaded + rejected.

CREATE TABLE funnelhouse.ingest_files (
    id BIGSERIAL PRIMARY KEY,
    path TEXT NOT NULL,
    checksum CHAR(64) NOT NULL,
    size_bytes BIGINT,
    -- The file's modification stamp as the landing store reports it: with path and size, lets the
    -- sensor skip re-hashing files it has already seen.
    modified TEXT,
    table_name TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('csv', 'jsonl', 'parquet')),
    status TEXT NOT NULL CHECK (status IN ('loading', 'loaded', 'failed', 'duplicate')),
    rows_in BIGINT,
    rows_loaded BIGINT,
    rows_rejected BIGINT,
    rows_changed BIGINT,
    duplicate_of BIGINT REFERENCES funnelhouse.ingest_files (id),
    error TEXT,
    -- Per great-expectations expectation: rows checked and rows that broke it.
    validation JSONB,
    run_id TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    finished_at TIMESTAMPTZ,
    CHECK (status <> 'loaded' OR rows_in = rows_loaded + rows_rejected)
);

CREATE UNIQUE INDEX ingest_files_loaded_once ON funnelhouse.ingest_files (table_name, checksum)
    WHERE status = 'loaded';
CREATE INDEX ingest_files_path ON funnelhouse.ingest_files (path, checksum);
CREATE INDEX ingest_files_recent ON funnelhouse.ingest_files (started_at DESC);

CREATE TABLE funnelhouse.ingest_rejects (
    id BIGSERIAL PRIMARY KEY,
    file_id BIGINT NOT NULL REFERENCES funnelhouse.ingest_files (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    rule TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw_row JSONB NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX ingest_rejects_file ON funnelhouse.ingest_rejects (file_id, row_number);
CREATE INDEX ingest_rejects_table_rule ON funnelhouse.ingest_rejects (table_name, rule);
