-- ensure_conversation_partitions (0004) names its partitions without a schema, so they were
-- created in the first schema of the caller's search_path. The default search_path starts with
-- "$user", and the embedded role is called funnelhouse like the tooling schema: partitions made
-- by a load or by the monthly job landed in schema funnelhouse (a DROP SCHEMA funnelhouse CASCADE
-- to reset the ledger would have deleted conversations; pg_dump -n public missed them).
--
-- The function now runs with search_path public, whoever calls it (temporary tables, which it
-- uses to move rows, are still found: pg_temp is searched first unless listed).
ALTER FUNCTION ensure_conversation_partitions(DATE, DATE) SET search_path = public;

-- Partitions already created elsewhere move to public (their indexes with them). No name can
-- clash: a partition of the same name in public would cover the same month, which PostgreSQL
-- refuses (partitions cannot overlap).
DO $$
DECLARE
    misplaced REGCLASS;
BEGIN
    FOR misplaced IN
        SELECT i.inhrelid::regclass
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.conversations'::regclass
          AND c.relnamespace <> 'public'::regnamespace
    LOOP
        EXECUTE format('ALTER TABLE %s SET SCHEMA public', misplaced);
    END LOOP;
END;
$$;
