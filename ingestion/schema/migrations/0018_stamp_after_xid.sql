-- updated_at is stamped only once the writing transaction has an xid.
--
-- The consumers read windows [previous bound, bound) where the bound is the start of the oldest open
-- transaction that has an xid (pg_stat_activity.backend_xid), or now if there is none
-- (ingestion/replication/cursor.py). That holds only if every stamp is read from the clock while its
-- transaction is already visible there. But PostgreSQL assigns the xid at the first heap write, and an
-- INSERT's BEFORE trigger runs before its heap write: a transaction whose first write is an INSERT
-- stamped the row while it had no xid yet. A bound read between the stamp and the heap write did not
-- see that transaction, so it was now, later than the stamp; the row committed afterwards with an
-- updated_at behind the bound, and the next window started at the bound: never replicated nor synced.
--
-- pg_current_xact_id() assigns the xid if the transaction has none (the heap write would have anyway;
-- afterwards it is a cheap read), so a bound that misses the transaction was read before the xid, and
-- therefore before the stamp. UPDATE already locks the old row (which assigns the xid) before its
-- BEFORE trigger runs, but both stamping branches ask, so neither relies on that. A no-op update keeps
-- the old stamp and needs nothing.
--
-- Tombstones need no change: record_deletion() and record_conversation_deletion() are AFTER DELETE
-- triggers, which run after the heap delete has assigned the xid, and sync_deletions.deleted_at is
-- read from the clock then (its column default).

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW IS DISTINCT FROM OLD THEN
        PERFORM pg_current_xact_id();
        NEW.updated_at := clock_timestamp();
    ELSE
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END;
$$;
