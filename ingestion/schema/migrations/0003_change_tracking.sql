-- Change tracking for the consumers downstream of PostgreSQL (ClickHouse replication, search sync).
--
-- updated_at is owned by the database: set on every insert and on every update that changes the
-- row, so "(updated_at, id) > cursor" finds each change. An update that changes nothing (a re-run
-- of the same landing file) keeps the old value, so re-runs do not wake the consumers.
-- Deletes leave a tombstone in sync_deletions, read by the same kind of cursor.

CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.updated_at := clock_timestamp();
    ELSIF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := clock_timestamp();
    ELSE
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TABLE sync_deletions (
    id BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    row_id BIGINT NOT NULL,
    deleted_at TIMESTAMP NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_sync_deletions_cursor ON sync_deletions (table_name, deleted_at, id);

-- A row moved between partitions by ensure_conversation_partitions() is deleted and re-inserted
-- with the same id; that is no deletion, so the mover switches tombstones off for its transaction.
CREATE FUNCTION record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('funnelhouse.moving_rows', true) = 'on' THEN
        RETURN OLD;
    END IF;
    INSERT INTO sync_deletions (table_name, row_id) VALUES (TG_ARGV[0], OLD.id);
    RETURN OLD;
END;
$$;

DO $$
DECLARE
    seed_table TEXT;
BEGIN
    FOREACH seed_table IN ARRAY ARRAY[
        'employees', 'customers', 'tags', 'customer_tags', 'customer_journey', 'funnel_tofu',
        'funnel_mofu', 'funnel_bofu', 'deposits', 'withdrawals', 'scripts', 'conversations',
        'conversation_events', 'employee_kpis', 'materials', 'training_courses', 'training_progress',
        'system_settings'
    ] LOOP
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION set_updated_at()',
            seed_table || '_set_updated_at', seed_table);
        -- On the partitioned table the trigger fires per partition; TG_TABLE_NAME would then be the
        -- partition's name, so tombstones name the parent explicitly.
        EXECUTE format(
            'CREATE TRIGGER %I AFTER DELETE ON %I FOR EACH ROW EXECUTE FUNCTION record_deletion(%L)',
            seed_table || '_record_deletion', seed_table, seed_table);
        EXECUTE format('CREATE INDEX %I ON %I (updated_at, id)', 'idx_' || seed_table || '_sync_cursor', seed_table);
    END LOOP;
END;
$$;
