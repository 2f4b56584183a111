-- Values the loader stored as NULL where it now stores the column's DEFAULT.
--
-- Since 4b7b825 the loader stores an empty landing value of a column with a DEFAULT as that
-- DEFAULT (funnel_bofu.is_vip FALSE, the counts 0: ingestion/load/loader.py, MergePlan.defaults),
-- as an INSERT without the column would. Rows loaded before kept their NULLs, so (a) BI filters
-- such as is_vip = 0 still missed them, and (b) a late landing file of an older batch re-sending
-- such a row unchanged was quarantined: MergePlan.older_batch_changes compared the stored NULL
-- with the DEFAULT the file's empty value now means, saw a change, and refused it ("older batch").
-- Here those NULLs become what the loader would store for them today.
--
-- Which columns: in each seed table (the 18 of 0003 and 0023; not funnelhouse's tables nor the
-- sync_* ones, which no load writes), every nullable column whose DEFAULT is a literal (0, false,
-- 'USD'::character varying; read from the catalog, as the loader reads it). That is the loader's
-- rule restricted to columns that can hold NULL:
-- * MergePlan.defaults is every contract column with a DEFAULT that is not ``required``; a NOT
--   NULL column never holds NULL, so only nullable ones matter here.
-- * The catalog cannot tell ``required`` (a contract flag), but no required column is nullable with
--   a DEFAULT: the required columns with one are NOT NULL (created_at, tagged_at: CURRENT_TIMESTAMP),
--   and an empty required value is quarantined, never loaded, so no load left a NULL there anyway.
-- * A DEFAULT calling a function (nextval, CURRENT_TIMESTAMP, now() ...) is left out: it would
--   stamp the migration's time, not a value anybody sent. No nullable seed column has one today;
--   every nullable column with a DEFAULT is a contract column (none is id/updated_at).
-- So today the two sets are the same 48 columns (the funnels' flags and counts, employee_kpis'
-- counts, the scores of customers, is_active/is_system/is_public/is_required, display_order ...).
--
-- One UPDATE per table covers its columns: SET c = COALESCE(c, <its DEFAULT>) for each, on the
-- rows where one of them IS NULL. (SET c = DEFAULT per column would take one UPDATE per column,
-- each rewriting the row again; with a literal DEFAULT, COALESCE gives the same value.) Idempotent:
-- a second run finds no NULL and writes nothing; on a table without NULLs it is one read-only scan.
--
-- The rows changed are replicated: set_updated_at (0003, 0018) moves updated_at on every row whose
-- content changes, so incremental replication carries them to ClickHouse like any load's update.
DO $$
DECLARE
    seed_table TEXT;
    assignments TEXT;
    any_null TEXT;
BEGIN
    -- The seed tables: those 0023 gave a <table>_record_truncation trigger (its list of 0003's
    -- tables, not repeated here; the partitions' triggers carry the parent's name, so they are not).
    FOR seed_table IN
        SELECT c.relname FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND t.tgname = c.relname || '_record_truncation'
        ORDER BY c.relname
    LOOP
        SELECT string_agg(format('%I = COALESCE(%I, %s)', a.attname, a.attname, literal.sql), ', '
                          ORDER BY a.attnum),
               string_agg(format('%I IS NULL', a.attname), ' OR ' ORDER BY a.attnum)
          INTO assignments, any_null
          FROM pg_attribute a
          JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          CROSS JOIN LATERAL (SELECT pg_get_expr(d.adbin, d.adrelid) AS sql) literal
         WHERE a.attrelid = format('public.%I', seed_table)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped AND NOT a.attnotnull AND a.attgenerated = ''
           -- A literal, optionally cast: a number, true/false or a quoted string ('USD'::character
           -- varying, '-1'::integer). Anything else (a function call, CURRENT_TIMESTAMP) is left out.
           AND literal.sql ~ '^(-?[0-9]+(\.[0-9]+)?|true|false|''([^'']|'''')*'')(::[a-z ]+(\([0-9, ]+\))?)?$';
        IF assignments IS NOT NULL THEN
            EXECUTE format('UPDATE public.%I SET %s WHERE %s', seed_table, assignments, any_null);
        END IF;
    END LOOP;
END;
$$;
