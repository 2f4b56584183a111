-- Rows a later row of the same file replaced: counted in the ledger and kept, not dropped unseen.
--
-- A key given twice in one landing file keeps its last row (the file's last word on the row), and
-- the earlier rows used to vanish: counted as loaded, stored nowhere (two rows of one deposit_code
-- at 100.00 then 200.00 left no trace of the 100.00). They are not rejects: they were accepted and
-- replaced by the documented rule, so they stay inside rows_loaded (the CHECK rows_in = loaded +
-- rejected is unchanged) and out of ingest_rejects (which holds rows refused, and which the
-- reports count as such). rows_superseded says how many of rows_loaded a later row replaced, and
-- ingest_superseded keeps each one: its row number, the row that replaced it and its values as
-- written, so a key given to two different records by mistake can be found and fixed.
ALTER TABLE funnelhouse.ingest_files ADD COLUMN rows_superseded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE funnelhouse.ingest_files ADD CONSTRAINT ingest_files_superseded_are_loaded
    CHECK (status <> 'loaded' OR rows_superseded <= rows_loaded);

CREATE TABLE funnelhouse.ingest_superseded (
    id BIGSERIAL PRIMARY KEY,
    file_id BIGINT NOT NULL REFERENCES funnelhouse.ingest_files (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    -- The later row of the file with the same key, whose values were merged instead.
    superseded_by BIGINT NOT NULL,
    raw_row JSONB NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CHECK (superseded_by > row_number)
);

CREATE INDEX ingest_superseded_file ON funnelhouse.ingest_superseded (file_id, row_number);
