-- The UTC offset of each replication run bound (ingestion/replication/cursor.py, ``Bound``).
--
-- A bound is a wall-clock stamp of the zone the triggers stamp in, and that clock can fall back (DST
-- ends, or the server's TimeZone is changed): a stamp inside the repeated hour does not say which
-- offset it had, so the offset is recorded when the bound is fixed, from the same instant. Without
-- it, a step could not tell that its run's bound is later than a cursor stamped earlier before the
-- fall-back, nor start its window early enough to read the rows written after it. Bounds fixed before
-- this migration have none (NULL): the offset PostgreSQL gives their stamp is used for them.

ALTER TABLE funnelhouse.replication_run_bounds ADD COLUMN utc_offset_seconds INTEGER;
