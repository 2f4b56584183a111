-- Replication run bounds (issue 5): one visibility bound per orchestrated replication run.
--
-- `funnelhouse build` replicates every table in one process under one bound (ingestion/replication/
-- cursor.py): every table is read up to the same instant, so a child row never arrives in ClickHouse
-- before the parent row it references. Dagster replicates each table in a step of its own (possibly
-- its own process, possibly minutes apart): the first step of a run fixes the run's bound here and
-- every other step of the run reads it back. Rows older than a week are deleted as new runs start.

CREATE TABLE funnelhouse.replication_run_bounds (
    run_id TEXT PRIMARY KEY,
    bound TIMESTAMP NOT NULL,
    fixed_at TIMESTAMP NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'UTC')
);
