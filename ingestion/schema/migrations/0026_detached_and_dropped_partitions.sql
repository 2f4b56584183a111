-- A partition detached, dropped or attached leaves the same marker as a TRUNCATE (0023).
--
-- `ALTER TABLE conversations DETACH PARTITION conversations_2025_01` and `DROP TABLE
-- conversations_2025_01` take a month of rows out of conversations, and `ATTACH PARTITION` puts one
-- back, without firing a row or a truncate trigger: the rows stayed live in ClickHouse raw, the marts
-- and the search index, or (attached, their updated_at behind every cursor) never came back. A marker
-- in sync_truncations naming the parent has replication reload it whole with tombstones, and the
-- search sync delete the documents whose conversation is gone and index those it lacks.
--
-- No trigger sees this DDL but an event trigger, and event triggers run inside every role's DDL
-- (a superuser's too) with functions their non-superuser owner may replace, and fail DDL of roles
-- that cannot read public. So nothing fires here: the consumers poll. record_partition_changes()
-- compares the partitions of each partitioned seed table with the set it recorded last time
-- (sync_partition_sets), records a marker when the set changed in a way that moves rows, and stores
-- the new set. Replication and the search sync call it before they read markers
-- (ingestion/replication/replicate.py, ingestion/search/sync.py), with the DSN they already write
-- through (FUNNELHOUSE_PG_DSN: run bounds, search cursors), never the read-only replication role.

-- The marker's rules in one place (the xid first, as migration 0018 wants of every stamp), for
-- 0023's trigger and the poll below.
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

-- The partitions (every level: a sub-partitioned month leaves with its leaves) each partitioned seed
-- table has now. A seed table is one carrying 0023's trigger named after itself, so a table
-- partitioned later is followed without a list to keep. By oid, not name: a month dropped and made
-- again under its name is another table, and a table renamed is the same. And by its attachment:
-- a table detached, edited (rows deleted) and attached again keeps its oid, but each ATTACH writes a
-- new pg_inherits row, whose xmin (attached_xid) tells this attachment from the earlier one (freezing
-- keeps a row's xmin readable; only a DETACH CONCURRENTLY updates the row, and it is out by then;
-- were it ever to change otherwise, one needless reload would follow, never a miss). A
-- partition whose DETACH CONCURRENTLY is under way is out already (queries no longer read it).
CREATE FUNCTION current_seed_partitions()
RETURNS TABLE (parent TEXT, partition_oid OID, partition_name TEXT, attached_xid BIGINT, is_leaf BOOLEAN)
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT seed.relname::text, tree.relid, tree.relid::regclass::text, i.xmin::text::bigint, tree.isleaf
    FROM pg_class seed
    JOIN pg_trigger t ON t.tgrelid = seed.oid AND t.tgname = seed.relname || '_record_truncation'
                     AND t.tgfoid = 'public.record_truncation'::regproc
    CROSS JOIN LATERAL pg_partition_tree(seed.oid) tree
    JOIN pg_inherits i ON i.inhrelid = tree.relid  -- (a partition's one row: it has one parent)
    WHERE seed.relnamespace = 'public'::regnamespace AND seed.relkind = 'p' AND tree.level > 0
      AND NOT i.inhdetachpending
$$;

-- Tables carrying 0023's trigger of a seed table they are no longer part of: detached partitions
-- (PostgreSQL leaves the trigger 0023 gave each partition on the table it detaches).
CREATE FUNCTION detached_seed_partitions() RETURNS TABLE (parent TEXT, detached REGCLASS, trigger_name TEXT)
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT parent.relname::text, t.tgrelid::regclass, t.tgname::text
    FROM pg_trigger t
    JOIN pg_class parent ON parent.relnamespace = 'public'::regnamespace
                        AND t.tgname = parent.relname || '_record_truncation'
    WHERE t.tgfoid = 'public.record_truncation'::regproc
      AND t.tgrelid <> parent.oid
      AND NOT EXISTS (SELECT 1 FROM pg_partition_tree(parent.oid) tree WHERE tree.relid = t.tgrelid)
$$;

-- The set seen by the last poll.
CREATE TABLE sync_partition_sets (
    parent TEXT NOT NULL,
    partition_oid OID NOT NULL,
    partition_name TEXT NOT NULL,  -- as it was then, for the notice naming it once it is gone
    attached_xid BIGINT NOT NULL,  -- its pg_inherits row's xmin (current_seed_partitions)
    PRIMARY KEY (parent, partition_oid)
);

-- Whether follow_partition_truncations() has work: a partition of conversations lacking 0023's
-- trigger (0023's mark_truncations_of_conversation_partitions() looks for the same), or a detached
-- table still carrying it. Asked at every poll, not only when the set changed: an update that failed
-- (a lock timed out, rights lacking) is retried at the next poll, before a TRUNCATE of that partition
-- goes unseen. Catalog lookups only: cheap, no lock, no xid.
CREATE FUNCTION partition_triggers_behind() RETURNS BOOLEAN
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_inherits i
                   WHERE i.inhparent = 'public.conversations'::regclass
                     AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = i.inhrelid
                                                                  AND t.tgname = 'conversations_record_truncation'))
        OR EXISTS (SELECT 1 FROM public.detached_seed_partitions())
$$;

-- 0023's trigger onto partitions of conversations lacking it (made or attached by hand: only
-- ensure_conversation_partitions gives it), and off detached tables: an archive's TRUNCATE or DROP
-- no longer concerns its old parent. DDL on tables the poll's role may not own (a CRM database whose
-- tables another role owns), or that a long reader holds: then a WARNING, the poll's markers stand,
-- and the next poll tries again (partition_triggers_behind). Returns how many triggers it dropped.
CREATE FUNCTION follow_partition_truncations() RETURNS INTEGER LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp SET lock_timeout = '10s' AS $$
DECLARE
    detached RECORD;
    dropped INTEGER := 0;
BEGIN
    PERFORM public.mark_truncations_of_conversation_partitions();
    FOR detached IN SELECT * FROM public.detached_seed_partitions() LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', detached.trigger_name, detached.detached);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
EXCEPTION WHEN insufficient_privilege OR lock_not_available THEN
    RAISE WARNING 'the truncation triggers of partitions could not be updated (%): a TRUNCATE of a '
                  'partition made or attached by hand is not seen downstream until the tables'' owner runs '
                  'SELECT public.follow_partition_truncations();', SQLERRM;
    RETURN 0;
END;
$$;

-- One marker per seed table whose set changed since the last poll (however often or however it was
-- spelled: DETACH, DETACH CONCURRENTLY, DROP, DROP ... CASCADE), when:
-- * a partition left it: its rows are gone from the parent (one detached and attached again since
--   counts as left, and as joined: the rows it lost meanwhile left no tombstone);
-- * a leaf joined it holding rows when first seen. Rows written into a partition while it belongs to
--   the parent are stamped then, so the consumers' windows carry them; rows it held before it
--   joined (ATTACH of a table filled elsewhere, or of a month detached earlier) are stamped in the
--   past, behind every cursor, and only a reload brings them. The months ensure_conversation_partitions
--   makes are recorded by it as it makes them (below): whatever they hold (rows moved out of the
--   default partition, a load right after) was written with fresh stamps, so the monthly job's
--   months and the loader's never cause a reload. A partition made by hand and filled between two
--   polls costs one reload that was not needed: its rows cannot be told from attached ones, and a
--   reload is right for both.
-- Then the truncation triggers are brought up to date when they are behind (partition_triggers_behind).
-- Returns the number of markers recorded.
--
-- Two callers at once (replication and the search sync) are put one after the other by the lock:
-- the second reads the set the first stored and finds no change, so a change is marked once. A
-- marker is not used up by a consumer: each reads those in its own window past its own cursor, and
-- the poll's transaction, which has its xid before the stamp, holds every consumer's bound back until
-- it commits (migrations 0018, 0023), so none passes the marker by. In the caller's transaction: a
-- rollback takes marker and set with it, and the next poll finds the change again.
CREATE FUNCTION record_partition_changes() RETURNS INTEGER LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    -- The changes: partitions there now and not recorded (joined), recorded and not there (left),
    -- read in one statement, one snapshot of both: a change committed meanwhile is found by the next
    -- poll, never recorded unmarked. Held in arrays, one element per change (no temp table: this runs
    -- at every replication and sync).
    parents TEXT[];
    oids OID[];
    xids BIGINT[];
    names TEXT[];
    leaves BOOLEAN[];
    joins BOOLEAN[];
    seed TEXT;
    left_names TEXT[];
    joined_with_rows TEXT[];
    newcomer RECORD;
    holds_rows BOOLEAN;
    marked INTEGER := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('public.sync_partition_sets'));
    WITH now_set AS (SELECT * FROM public.current_seed_partitions()),
         recorded AS (SELECT * FROM public.sync_partition_sets),
         changes AS (
             SELECT n.parent, n.partition_oid, n.attached_xid, n.partition_name, n.is_leaf, true AS joined
             FROM now_set n
             WHERE NOT EXISTS (SELECT 1 FROM recorded r
                               WHERE r.parent = n.parent AND r.partition_oid = n.partition_oid
                                 AND r.attached_xid = n.attached_xid)
             UNION ALL
             SELECT r.parent, r.partition_oid, r.attached_xid, r.partition_name, false, false FROM recorded r
             WHERE NOT EXISTS (SELECT 1 FROM now_set n
                               WHERE n.parent = r.parent AND n.partition_oid = r.partition_oid
                                 AND n.attached_xid = r.attached_xid))
    SELECT array_agg(parent), array_agg(partition_oid), array_agg(attached_xid), array_agg(partition_name),
           array_agg(is_leaf), array_agg(joined)
    INTO parents, oids, xids, names, leaves, joins
    FROM changes;
    IF parents IS NULL THEN  -- (the usual case: nothing written, no xid taken)
        IF public.partition_triggers_behind() THEN
            PERFORM public.follow_partition_truncations();
        END IF;
        RETURN 0;
    END IF;

    FOR seed IN SELECT DISTINCT unnest(parents) LOOP
        SELECT array_agg(c.partition_name ORDER BY c.partition_name) INTO left_names
        FROM unnest(parents, names, joins) AS c(parent, partition_name, joined)
        WHERE c.parent = seed AND NOT c.joined;
        joined_with_rows := '{}';
        FOR newcomer IN
            SELECT c.partition_oid, c.partition_name
            FROM unnest(parents, oids, names, leaves, joins) AS c(parent, partition_oid, partition_name, is_leaf, joined)
            WHERE c.parent = seed AND c.joined
              AND c.is_leaf  -- (a sub-partitioned one holds its leaves' rows, looked at as leaves)
              AND EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.partition_oid)  -- (not dropped since)
        LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', newcomer.partition_oid::regclass)
                INTO holds_rows;
            IF holds_rows THEN
                joined_with_rows := joined_with_rows || newcomer.partition_name;
            END IF;
        END LOOP;
        IF left_names IS NOT NULL OR cardinality(joined_with_rows) > 0 THEN
            PERFORM public.record_truncation_marker(seed);
            marked := marked + 1;
            RAISE NOTICE '%: % left, % joined holding rows; it is reloaded downstream (ClickHouse, the '
                         'search index)', seed, coalesce(left_names, '{}'), joined_with_rows;
        END IF;
    END LOOP;

    -- The changes only: a month ensure_conversation_partitions recorded meanwhile stays recorded.
    DELETE FROM public.sync_partition_sets r
    USING unnest(parents, oids, xids, joins) AS c(parent, partition_oid, attached_xid, joined)
    WHERE NOT c.joined AND r.parent = c.parent AND r.partition_oid = c.partition_oid
      AND r.attached_xid = c.attached_xid;
    INSERT INTO public.sync_partition_sets (parent, partition_oid, partition_name, attached_xid)
    SELECT c.parent, c.partition_oid, c.partition_name, c.attached_xid
    FROM unnest(parents, oids, xids, names, joins) AS c(parent, partition_oid, attached_xid, partition_name, joined)
    WHERE c.joined
    ON CONFLICT DO NOTHING;
    IF public.partition_triggers_behind() THEN
        PERFORM public.follow_partition_truncations();
    END IF;
    RETURN marked;
END;
$$;

-- 0023's wrapper, and the months it made are recorded as seen (see above), with the attachment
-- current_seed_partitions() reports. Made by this call: partitions absent before it and present after
-- (creators of a month are put one after the other by create_conversation_partitions' advisory lock).
-- Not by their catalog rows' xmin: called in a subtransaction (a SAVEPOINT, a plpgsql EXCEPTION
-- block, psql's ON_ERROR_ROLLBACK) that is the subtransaction's xid, not the top-level one, and the
-- month's first rows would cost a whole reload.
CREATE OR REPLACE FUNCTION ensure_conversation_partitions(first_month DATE, last_month DATE)
RETURNS INTEGER LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    created INTEGER;
    before OID[];
BEGIN
    before := ARRAY(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'public.conversations'::regclass);
    created := create_conversation_partitions(first_month, last_month);
    IF created > 0 THEN
        PERFORM mark_truncations_of_conversation_partitions();
        INSERT INTO public.sync_partition_sets (parent, partition_oid, partition_name, attached_xid)
        SELECT 'conversations', i.inhrelid, i.inhrelid::regclass::text, i.xmin::text::bigint
        FROM pg_inherits i
        WHERE i.inhparent = 'public.conversations'::regclass AND NOT i.inhrelid = ANY(before)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN created;
END;
$$;

-- Tables detached before now still carry 0023's trigger (nothing removed it): their rows are live
-- downstream, so each seed table they came from gets a marker, once, and they lose the trigger.
-- A partition dropped before now left no trace and cannot be found.
SELECT record_truncation_marker(parent) FROM (SELECT DISTINCT parent FROM detached_seed_partitions()) d;
SELECT follow_partition_truncations();

-- The set as it is now: the first poll compares with it (the rows of today's partitions are
-- downstream already and need no marker).
INSERT INTO sync_partition_sets (parent, partition_oid, partition_name, attached_xid)
SELECT parent, partition_oid, partition_name, attached_xid FROM current_seed_partitions();
