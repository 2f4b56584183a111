-- A month's partition of conversations is found by its range, not by its name.
--
-- 0004's function (create_conversation_partitions since 0023) took a month as partitioned when a
-- table named conversations_YYYY_MM existed. A month covered by a partition of another name (one
-- attached by hand, pg_partman's conversations_p2031_05) made it create conversations_2031_05 anyway,
-- and PostgreSQL refused ("would overlap", SQLSTATE 42P17): the call failed whole (its other months
-- too), and so did a load bringing a row of that month and the monthly job for its whole window.
--
-- Now a month is made only when no attached partition's range overlaps it (the default partition has
-- no range). A month covered whole (by one partition or several) is skipped. A month covered in part
-- cannot get a monthly partition: create_conversation_partitions says so, naming the partitions
-- covering part of it; the rest of the month's rows stay in conversations_default. A load does not ask
-- for such a month (conversation_month_missing is false): its rows go where PostgreSQL routes them.
-- A month no partition covers whose usual name is taken by another table (a month detached and kept
-- under its name) is still left to conversations_default, as before.

-- The attached, non-default partitions of conversations whose range overlaps the month starting at
-- month_start, each with the part of the month it covers. The bounds are read back from
-- pg_get_expr(relpartbound): sent_at is a TIMESTAMP, printed and read here in one DateStyle.
CREATE FUNCTION conversation_partitions_in_month(month_start DATE)
RETURNS TABLE (partition_name TEXT, covers_from TIMESTAMP, covers_to TIMESTAMP)
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp SET datestyle = 'ISO, YMD' AS $$
    WITH bounds AS (
        SELECT c.oid::regclass::text AS partition_name,
               regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \((.+)\) TO \((.+)\)$') AS b
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.conversations'::regclass
    ), ranges AS (
        SELECT partition_name,
               (CASE b[1] WHEN 'MINVALUE' THEN '-infinity' ELSE btrim(b[1], '''') END)::timestamp AS low,
               (CASE b[2] WHEN 'MAXVALUE' THEN 'infinity' ELSE btrim(b[2], '''') END)::timestamp AS high
        FROM bounds
        WHERE b IS NOT NULL  -- the default partition: FOR VALUES DEFAULT
    )
    SELECT partition_name,
           greatest(low, month_start::timestamp),
           least(high, (month_start + INTERVAL '1 month')::timestamp)
    FROM ranges
    WHERE low < month_start + INTERVAL '1 month' AND high > month_start::timestamp
    ORDER BY 2
$$;

-- Whether the month holding `month` needs its partition made: no partition covers any of it, and
-- its name is free. What the loader asks before taking the locks a new partition needs, and what
-- create_conversation_partitions goes by: one place decides.
CREATE FUNCTION conversation_month_missing(month DATE) RETURNS BOOLEAN
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT NOT EXISTS (SELECT 1 FROM public.conversation_partitions_in_month(date_trunc('month', month)::date))
       AND to_regclass(format('public.%I', 'conversations_' || to_char(month, 'YYYY_MM'))) IS NULL
$$;

-- 0004's body (by name, moving the default partition's rows of the month) is kept under another name
-- and called for one month at a time, a month conversation_month_missing says is missing.
ALTER FUNCTION create_conversation_partitions(DATE, DATE) RENAME TO create_conversation_partitions_by_name;

CREATE FUNCTION create_conversation_partitions(first_month DATE, last_month DATE)
RETURNS INTEGER LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    month_start DATE := date_trunc('month', first_month)::date;
    month_end DATE;
    covering TEXT;
    covered INTERVAL;
    created INTEGER := 0;
BEGIN
    WHILE month_start <= last_month LOOP
        month_end := (month_start + INTERVAL '1 month')::date;
        IF conversation_month_missing(month_start) THEN
            -- Serialise concurrent creators of the same month (the lock 0004's body takes too).
            PERFORM pg_advisory_xact_lock(hashtext(format('conversations_%s', to_char(month_start, 'YYYY_MM'))));
            IF conversation_month_missing(month_start) THEN
                created := created + create_conversation_partitions_by_name(month_start, month_start);
            END IF;
        ELSE
            SELECT string_agg(format('%s (from %s to %s)', partition_name, covers_from, covers_to), ', '),
                   sum(covers_to - covers_from)
            INTO covering, covered
            FROM conversation_partitions_in_month(month_start);
            IF covered < month_end::timestamp - month_start::timestamp THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'invalid_object_definition',
                    MESSAGE = format('cannot create the partition of conversations for %s: partition %s '
                                     'covers only part of that month, and a monthly partition would '
                                     'overlap it', to_char(month_start, 'YYYY-MM'), covering),
                    HINT = 'The rest of the month''s rows are held by conversations_default. Cover the '
                           'rest of the month with partitions of your own, or replace that partition by '
                           'one covering whole months; months covered whole are skipped.';
            END IF;
        END IF;
        month_start := month_end;
    END LOOP;
    RETURN created;
END;
$$;
