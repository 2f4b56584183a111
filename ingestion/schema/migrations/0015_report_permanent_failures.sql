-- KPI report deliveries: failures that no retry can cure are not re-run by the redelivery sensor.
--
-- A relay without SMTPUTF8 never takes a non-ASCII local part (josé@...), and an address that is no
-- address stays one: the sensor re-ran such 'failed' deliveries until they had had ledger.MAX_RUNS
-- runs, hours of alerts for a failure that could not pass. `permanent` marks them (and 'bounced'
-- ones, refused for good by the server: the flag means the same for both). They stay 'failed' or
-- 'bounced', so any other run of the period (a re-materialised partition, `funnelhouse report
-- --send`) still tries them, once someone has changed the relay or the address; a claim clears the
-- flag, and the new outcome sets it again or not.
--
-- Written to be safe to run twice: every step checks what is already there.

ALTER TABLE funnelhouse.report_deliveries
    ADD COLUMN IF NOT EXISTS permanent BOOLEAN NOT NULL DEFAULT false;

-- Rows from before: bounces, and failures whose recorded reason is one a retry does not change.
UPDATE funnelhouse.report_deliveries
SET permanent = true
WHERE NOT permanent
  AND (status = 'bounced'
       OR (status = 'failed' AND error LIKE '%does not offer SMTPUTF8%'));

ALTER TABLE funnelhouse.report_deliveries
    DROP CONSTRAINT IF EXISTS report_deliveries_permanent_check,
    ADD CONSTRAINT report_deliveries_permanent_check
        CHECK (NOT permanent OR status IN ('failed', 'bounced'));

-- What the redelivery sensor looks for: failures a retry may cure.
DROP INDEX IF EXISTS funnelhouse.report_deliveries_failed;
CREATE INDEX IF NOT EXISTS report_deliveries_retryable ON funnelhouse.report_deliveries (period_kind, period_start)
    WHERE status = 'failed' AND NOT permanent;
