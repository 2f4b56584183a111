-- KPI report deliveries: automatic re-delivery of failed ones, and no second copy where the first
-- one's fate is unknown.
--
-- `runs`: how many runs have claimed the delivery (tried to send it). The redelivery sensor
-- (orchestration/defs/reports/sensors.py) re-runs a period for its 'failed' deliveries until they
-- are sent or have had `ledger.MAX_RUNS` runs; 'bounced' ones (refused for good) are left alone.
-- Rows from before this migration count as claimed once.
--
-- 'unknown': the connection was lost after the message was handed over (DATA), before the server
-- said whether it took it. It may well have been delivered, so no run sends it again by itself:
-- `funnelhouse report --resend` does, once someone has checked. `data_started_at`: when a run
-- last began handing the message over; a claim left 'sending' by a run that died after that is
-- just as unknown, and is not reclaimed when it goes stale either.

ALTER TABLE funnelhouse.report_deliveries
    ADD COLUMN runs INTEGER NOT NULL DEFAULT 1 CHECK (runs >= 1),
    ADD COLUMN data_started_at TIMESTAMPTZ,
    DROP CONSTRAINT report_deliveries_status_check,
    ADD CONSTRAINT report_deliveries_status_check
        CHECK (status IN ('sending', 'sent', 'bounced', 'failed', 'unknown'));

CREATE INDEX report_deliveries_failed ON funnelhouse.report_deliveries (period_kind, period_start)
    WHERE status = 'failed';
