-- An UPDATE that gives a conversation a sent_at in another month moves the row to that month's
-- partition: PostgreSQL runs it as a DELETE from the old partition and an INSERT into the new one,
-- and fires the AFTER DELETE trigger. 0003's record_deletion then left a tombstone for a row that is
-- still there, and the consumers (ClickHouse replication, search sync) deleted it downstream.
--
-- Row-level AFTER triggers run at the end of their statement, when the moved row is already in its
-- new partition: a deleted row whose id the table still holds was moved, not deleted. (The moved
-- row carries a new updated_at, so the consumers pick up its new version as any other update.)
CREATE FUNCTION record_deletion_unless_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    still_there BOOLEAN;
BEGIN
    IF current_setting('funnelhouse.moving_rows', true) = 'on' THEN
        RETURN OLD;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE id = $1)', TG_ARGV[0]) INTO still_there USING OLD.id;
    IF NOT still_there THEN
        INSERT INTO sync_deletions (table_name, row_id) VALUES (TG_ARGV[0], OLD.id);
    END IF;
    RETURN OLD;
END;
$$;

-- conversations is the only partitioned table, so the only one whose rows can move.
DROP TRIGGER conversations_record_deletion ON conversations;
CREATE TRIGGER conversations_record_deletion AFTER DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION record_deletion_unless_moved('conversations');
