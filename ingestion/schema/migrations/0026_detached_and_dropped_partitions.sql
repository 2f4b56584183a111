-- A partition detached or dropped leaves the same marker as a TRUNCATE (0023).
--
-- `ALTER TABLE conversations DETACH PARTITION conversations_2025_01` and `DROP TABLE
-- conversations_2025_01` take a month of rows out of conversations without firing a row or a
-- truncate trigger: they stayed live in ClickHouse raw, the marts and the search index. Both now
-- record a marker in sync_truncations naming the parent, so replication reloads it whole with
-- tombstones and the search sync deletes the documents whose conversation is gone, exactly as after
-- a TRUNCATE (ingestion/replication/replicate.py, ingestion/search/sync.py: nothing new there).
--
-- Only event triggers see this DDL. What they are told, and so what is relied on:
-- * DETACH (ddl_command_end): pg_event_trigger_ddl_commands() names the parent, not the partition
--   (its pg_ddl_command cannot be read in SQL). But 0023 gave every partition its own statement
--   trigger <parent>_record_truncation, and PostgreSQL leaves it on the table it detaches (it only
--   removes the triggers it cloned). A table carrying that trigger that is neither the parent nor
--   one of its partitions was detached: that is the marker's evidence, read from the catalog after
--   the fact, so it holds however the DETACH was spelled (a FINALIZE too), and the trigger is then
--   dropped: the detached table is an archive, its TRUNCATE or DROP no longer concerns the parent.
-- * DROP (sql_drop): the catalog rows are gone when it fires, so pg_inherits cannot say whose
--   partition it was. pg_event_trigger_dropped_objects() lists the table's triggers with it, and a
--   dropped <parent>_record_truncation whose table was dropped in the same statement names the
--   parent (0023's naming, which 0025 relies on too). A partition detached first has no trigger
--   left and leaves no second marker; DROP TABLE of a whole seed table marks it (all its rows went).
-- Both rest on each partition having the trigger, which 0023 gives to the partitions that
-- ensure_conversation_partitions makes. Partitions made otherwise (a DBA's CREATE TABLE ...
-- PARTITION OF, ATTACH PARTITION) get it here, at the end of that command, so none is missed.
--
-- Event triggers need a superuser to create (an RDS-like rds_superuser may too). A migrator without
-- that right (production: the tables' owner) gets a WARNING and the chain goes on without them:
-- TRUNCATE is still seen, a DETACH or DROP of a partition is not until a superuser runs
-- `SELECT public.create_partition_event_triggers();` (docs/warehouse.md); until then, after one,
-- replicate with --full-refresh and rebuild the search index (`funnelhouse reindex --full`).
-- A DETACH done before this migration is found by the scan below (its trigger is still there);
-- a DROP done before it cannot be.

-- The marker itself, for the trigger of 0023 and the event triggers here: one place for its rules
-- (the xid first, as migration 0018 wants of every stamp).
CREATE FUNCTION record_truncation_marker(seed_table TEXT) RETURNS VOID LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    PERFORM pg_current_xact_id();
    INSERT INTO public.sync_truncations (table_name) VALUES (seed_table);
END;
$$;

CREATE OR REPLACE FUNCTION record_truncation() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    PERFORM public.record_truncation_marker(TG_ARGV[0]);
    RETURN NULL;
END;
$$;

-- Tables detached from a seed table (of those in parents, or of any when parents is NULL): marked,
-- their inherited truncation trigger dropped. Returns how many.
CREATE FUNCTION mark_detached_partitions(parents OID[]) RETURNS INTEGER LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    detached RECORD;
    marked INTEGER := 0;
BEGIN
    FOR detached IN
        SELECT t.tgrelid::regclass AS detached_table, t.tgname, parent.relname AS seed_table
        FROM pg_trigger t
        JOIN pg_class parent ON parent.relnamespace = 'public'::regnamespace
                            AND t.tgname = parent.relname || '_record_truncation'
        WHERE t.tgfoid = 'public.record_truncation'::regproc
          AND t.tgrelid <> parent.oid
          AND (parents IS NULL OR parent.oid = ANY(parents))
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i
                          WHERE i.inhrelid = t.tgrelid AND i.inhparent = parent.oid)
    LOOP
        PERFORM public.record_truncation_marker(detached.seed_table);
        EXECUTE format('DROP TRIGGER %I ON %s', detached.tgname, detached.detached_table);
        RAISE NOTICE '% is no longer a partition of %: its rows leave ClickHouse and the search index '
                     'with the next replication and sync', detached.detached_table, detached.seed_table;
        marked := marked + 1;
    END LOOP;
    RETURN marked;
END;
$$;

-- ddl_command_end of CREATE TABLE and ALTER TABLE. Only commands on conversations or one of its
-- partitions go further (another role's unrelated DDL must not need rights on them).
CREATE FUNCTION on_partition_ddl() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    altered OID[];
BEGIN
    IF to_regclass('public.sync_truncations') IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(DISTINCT c.objid) INTO altered
    FROM pg_event_trigger_ddl_commands() c
    WHERE c.classid = 'pg_class'::regclass;
    IF altered IS NULL THEN
        RETURN;
    END IF;
    -- A DETACH names the parent: the seed tables altered are the parents to look under.
    PERFORM public.mark_detached_partitions(altered);
    -- A partition created or attached by hand gets 0023's trigger, as ensure_conversation_partitions'.
    IF to_regclass('public.conversations') IS NOT NULL AND EXISTS (
        SELECT 1 FROM unnest(altered) AS a(oid)
        WHERE a.oid = 'public.conversations'::regclass
           OR EXISTS (SELECT 1 FROM pg_inherits i
                      WHERE i.inhrelid = a.oid AND i.inhparent = 'public.conversations'::regclass)) THEN
        PERFORM public.mark_truncations_of_conversation_partitions();
    END IF;
END;
$$;

-- sql_drop: a <seed>_record_truncation trigger dropped together with its table.
CREATE FUNCTION on_partition_drop() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    seed_table TEXT;
BEGIN
    IF to_regclass('public.sync_truncations') IS NULL THEN
        RETURN;  -- dropped by this very statement (DROP SCHEMA public CASCADE ...)
    END IF;
    FOR seed_table IN
        SELECT DISTINCT left(trg.address_names[3], -length('_record_truncation'))
        FROM pg_event_trigger_dropped_objects() trg
        WHERE trg.object_type = 'trigger'
          AND trg.address_names[3] LIKE '%\_record\_truncation'
          AND EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() tbl
                      WHERE tbl.object_type = 'table' AND tbl.address_names = trg.address_names[1:2])
    LOOP
        PERFORM public.record_truncation_marker(seed_table);
    END LOOP;
END;
$$;

-- Idempotent, so a superuser can run it later where the migration could not (see above).
CREATE FUNCTION create_partition_event_triggers() RETURNS VOID LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'record_detached_partitions') THEN
        CREATE EVENT TRIGGER record_detached_partitions ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE') EXECUTE FUNCTION public.on_partition_ddl();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'record_dropped_partitions') THEN
        CREATE EVENT TRIGGER record_dropped_partitions ON sql_drop
            EXECUTE FUNCTION public.on_partition_drop();
    END IF;
END;
$$;

DO $$
BEGIN
    PERFORM create_partition_event_triggers();
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'migration 0026: % cannot create event triggers, so a DETACH or DROP of a partition '
                  'of conversations will not reach ClickHouse or the search index; as a superuser run '
                  'SELECT public.create_partition_event_triggers(); (docs/warehouse.md)', current_user;
END;
$$;

-- Partitions detached before now: their rows are still live downstream.
SELECT mark_detached_partitions(NULL);
