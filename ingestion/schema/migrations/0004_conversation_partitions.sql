-- Section 5: conversations partitioned by month on sent_at.
--
-- ensure_conversation_partitions(first, last) creates the monthly partitions covering [first, last].
-- Loaders call it for the months in a batch, and a monthly Dagster schedule calls it for the
-- months ahead. A row whose month has no partition yet lands in conversations_default and is
-- never lost; when that month's partition is created later, its rows move out of the default
-- partition in the same transaction.

CREATE FUNCTION ensure_conversation_partitions(first_month DATE, last_month DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    month_start DATE := date_trunc('month', first_month)::date;
    month_end DATE;
    partition_name TEXT;
    created INTEGER := 0;
BEGIN
    WHILE month_start <= last_month LOOP
        month_end := (month_start + INTERVAL '1 month')::date;
        partition_name := format('conversations_%s', to_char(month_start, 'YYYY_MM'));
        IF to_regclass(partition_name) IS NULL THEN
            -- Serialise concurrent creators of the same partition.
            PERFORM pg_advisory_xact_lock(hashtext(partition_name));
        END IF;
        IF to_regclass(partition_name) IS NULL THEN
            IF EXISTS (SELECT 1 FROM conversations_default
                       WHERE sent_at >= month_start AND sent_at < month_end) THEN
                -- PostgreSQL refuses to create a partition whose range the default partition
                -- holds rows of, and rows referenced by conversation_events cannot leave a
                -- partition. So: park those references, move the rows (ids kept), restore them.
                CREATE TEMP TABLE parked_event_references ON COMMIT DROP AS
                    SELECT e.id, e.conversation_id, e.conversation_sent_at
                    FROM conversation_events e
                    WHERE e.conversation_sent_at >= month_start AND e.conversation_sent_at < month_end;
                UPDATE conversation_events e SET conversation_id = NULL, conversation_sent_at = NULL
                FROM parked_event_references p WHERE e.id = p.id;
                CREATE TEMP TABLE moving_conversations ON COMMIT DROP AS
                    SELECT * FROM conversations_default WHERE sent_at >= month_start AND sent_at < month_end;
                PERFORM set_config('funnelhouse.moving_rows', 'on', true);
                DELETE FROM conversations_default WHERE sent_at >= month_start AND sent_at < month_end;
                PERFORM set_config('funnelhouse.moving_rows', 'off', true);
                EXECUTE format('CREATE TABLE %I PARTITION OF conversations FOR VALUES FROM (%L) TO (%L)',
                               partition_name, month_start, month_end);
                INSERT INTO conversations SELECT * FROM moving_conversations;
                UPDATE conversation_events e
                SET conversation_id = p.conversation_id, conversation_sent_at = p.conversation_sent_at
                FROM parked_event_references p WHERE e.id = p.id;
                DROP TABLE moving_conversations;
                DROP TABLE parked_event_references;
            ELSE
                EXECUTE format('CREATE TABLE %I PARTITION OF conversations FOR VALUES FROM (%L) TO (%L)',
                               partition_name, month_start, month_end);
            END IF;
            created := created + 1;
        END IF;
        month_start := month_end;
    END LOOP;
    RETURN created;
END;
$$;

-- The seed's two example partitions, and the months around installation.
SELECT ensure_conversation_partitions(DATE '2025-11-01', DATE '2025-12-01');
SELECT ensure_conversation_partitions(
    (date_trunc('month', CURRENT_DATE) - INTERVAL '1 month')::date,
    (date_trunc('month', CURRENT_DATE) + INTERVAL '3 months')::date);
