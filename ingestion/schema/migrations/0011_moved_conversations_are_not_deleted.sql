-- An UPDATE that gives a conversation a sent_at in another month moves the row to that month's
-- partition: PostgreSQL runs it as a DELETE from the old partition and an INSERT into the new one,
-- and fires the AFTER DELETE trigger. 0003's record_deletion then left a tombstone for a row that is
-- still there, and the consumers (ClickHouse replication, search sync) deleted it downstream.
--
-- Row-level AFTER triggers run at the end of their statement, when the moved row is already in its
-- new partition: a deleted row whose id the table still holds was moved, not deleted. (The moved
-- row carries a new updated_at, so the consumers pick up its new version as any other update.)
-- Static SQL, so the lookup's plan is cached for the session: a bulk delete pays an index probe
-- per partition and row, not a plan per row.
CREATE FUNCTION record_conversation_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('funnelhouse.moving_rows', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.conversations WHERE id = OLD.id) THEN
        INSERT INTO public.sync_deletions (table_name, row_id) VALUES ('conversations', OLD.id);
    END IF;
    RETURN OLD;
END;
$$;

-- conversations is the only partitioned table, so the only one whose rows can move.
DROP TRIGGER conversations_record_deletion ON conversations;
CREATE TRIGGER conversations_record_deletion AFTER DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION record_conversation_deletion();
