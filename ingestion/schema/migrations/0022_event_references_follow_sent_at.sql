-- 1. A conversation's sent_at can be corrected while events reference it.
--
-- conversation_events references conversations by (conversation_id, conversation_sent_at): a
-- foreign key into a partitioned table must cover its partition key (0001). With no ON UPDATE
-- rule, correcting a conversation's sent_at was refused as soon as an event pointed to it (the
-- seed's link is on id alone, which allows it; 0011 is about moving a conversation to another
-- month). The events now follow: ON UPDATE CASCADE rewrites their conversation_sent_at, within a
-- month or across months (a move between partitions runs the foreign key's UPDATE action on the
-- partitioned table, PostgreSQL 15+). The event rows are updated, not deleted: record_deletion
-- leaves no tombstone for them, and record_conversation_deletion (0011) none for the moved
-- conversation. The ON DELETE rule (NO ACTION, as the seed's) and the name stay; dropped and added
-- in one statement, so no moment is without the constraint.
ALTER TABLE conversation_events
    DROP CONSTRAINT conversation_events_conversation_id_conversation_sent_at_fkey,
    ADD CONSTRAINT conversation_events_conversation_id_conversation_sent_at_fkey
        FOREIGN KEY (conversation_id, conversation_sent_at) REFERENCES conversations (id, sent_at)
        ON UPDATE CASCADE ON DELETE NO ACTION;

-- 2. The partition function's search_path ends with pg_temp.
--
-- 0012 set it to public alone, and a schema list without pg_temp searches the session's temporary
-- schema first: a temporary table of the caller named conversations, conversations_default or
-- conversation_events captured the function's reads and writes of the seed table (or made it fail).
-- pg_temp now comes last, as 0020 did for the trigger functions, so a name public holds always
-- means public's table. Unlike theirs, pg_catalog is not listed first: this function creates
-- tables, which go to the first schema listed, and must go to public (pg_catalog is searched first
-- anyway when not listed). Its own temporary tables are still created in, and found in, pg_temp.
ALTER FUNCTION ensure_conversation_partitions(DATE, DATE) SET search_path = public, pg_temp;
