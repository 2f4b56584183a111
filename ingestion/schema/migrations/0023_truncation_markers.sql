-- TRUNCATE leaves a marker for the consumers downstream of PostgreSQL (ClickHouse replication).
--
-- TRUNCATE fires no row-level trigger, so 0003's record_deletion never saw it: the rows it removed
-- left no tombstone, incremental replication found "0 changed", and they stayed live in ClickHouse
-- raw and the marts until a --full-refresh. Tombstones for every row would cost what TRUNCATE is
-- used to avoid; instead a statement-level AFTER TRUNCATE trigger records one marker per table and
-- statement in sync_truncations, and replication reloads a table whose marker falls in its window
-- whole, tombstoning every row PostgreSQL no longer has (ingestion/replication/replicate.py).
--
-- The marker follows the tombstones' rules: it lives in public beside sync_deletions (readable by the
-- replication role: migrate.py grants it every table of public), it is stamped with the same clock
-- in the same column type, and only once the transaction has an xid (migration 0018; TRUNCATE has
-- assigned one by the time an AFTER trigger runs, but the function asks rather than rely on that).
-- A TRUNCATE rolled back takes its marker with it.

CREATE TABLE sync_truncations (
    id BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    truncated_at TIMESTAMP NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_sync_truncations_cursor ON sync_truncations (table_name, truncated_at);

-- TG_ARGV[0] names the seed table: on a partition of conversations the trigger reports the parent.
CREATE FUNCTION record_truncation() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    PERFORM pg_current_xact_id();
    INSERT INTO public.sync_truncations (table_name) VALUES (TG_ARGV[0]);
    RETURN NULL;
END;
$$;

-- The seed tables of 0003 (those record_deletion watches: since then no migration added one).
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
            'CREATE TRIGGER %I AFTER TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION record_truncation(%L)',
            seed_table || '_record_truncation', seed_table, seed_table);
    END LOOP;
END;
$$;

-- Partitions of conversations. PostgreSQL clones a partitioned table's row-level triggers onto its
-- partitions (so record_deletion follows rows into every month), but not its statement-level ones,
-- and `TRUNCATE conversations_2025_11` fires only the partition's own triggers. So each partition
-- gets the trigger too: those there now, and those ensure_conversation_partitions creates later (it
-- becomes a wrapper of 0004's function, renamed, that marks the partitions it created). A TRUNCATE of
-- the parent then leaves a marker per partition as well: harmless, they all name conversations.
CREATE FUNCTION mark_truncations_of_conversation_partitions() RETURNS INTEGER LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    part REGCLASS;
    marked INTEGER := 0;
BEGIN
    FOR part IN
        SELECT i.inhrelid::regclass FROM pg_inherits i
        WHERE i.inhparent = 'public.conversations'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                          WHERE t.tgrelid = i.inhrelid AND t.tgname = 'conversations_record_truncation')
    LOOP
        EXECUTE format(
            'CREATE TRIGGER conversations_record_truncation AFTER TRUNCATE ON %s'
            ' FOR EACH STATEMENT EXECUTE FUNCTION public.record_truncation(%L)',
            part, 'conversations');
        marked := marked + 1;
    END LOOP;
    RETURN marked;
END;
$$;

SELECT mark_truncations_of_conversation_partitions();

-- Callers (loads, the monthly job) keep calling ensure_conversation_partitions(first, last): 0004's
-- body, its search_path (0012, 0022) and its result stay as they were, under another name. A later
-- migration changing how partitions are made replaces create_conversation_partitions, not this.
ALTER FUNCTION ensure_conversation_partitions(DATE, DATE) RENAME TO create_conversation_partitions;

CREATE FUNCTION ensure_conversation_partitions(first_month DATE, last_month DATE)
RETURNS INTEGER LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    created INTEGER;
BEGIN
    created := create_conversation_partitions(first_month, last_month);
    IF created > 0 THEN
        PERFORM mark_truncations_of_conversation_partitions();
    END IF;
    RETURN created;
END;
$$;
