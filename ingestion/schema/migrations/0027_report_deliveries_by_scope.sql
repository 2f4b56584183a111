-- KPI report deliveries: one per (recipient, period kind, period start, scope), not one per address.
--
-- The ledger knew a delivery by its address alone, so once anyone had mailed a period's report to an
-- address (`funnelhouse report --send --to x --scope all`, say), every other report of that period
-- for the address counted as sent: `--to x --scope ToFu` was "already sent", and a recipients-file
-- entry for x with scope ToFu was skipped by the scheduled run, though nobody ever mailed x the ToFu
-- report. The scope is now part of the key (ingestion/reports/ledger.py). Rows from before keep the
-- scope they have (the last one claimed for the address): what went out last is what they record.
--
-- Written to be safe to run twice: every step checks what is already there.

ALTER TABLE funnelhouse.report_deliveries
    DROP CONSTRAINT IF EXISTS report_deliveries_once,
    DROP CONSTRAINT IF EXISTS report_deliveries_once_per_scope,
    ADD CONSTRAINT report_deliveries_once_per_scope UNIQUE (recipient, period_kind, period_start, scope);
