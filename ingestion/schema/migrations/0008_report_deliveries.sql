-- KPI report deliveries (issue 7): the ledger that makes "one report per recipient and period" hold.
--
-- A sender claims the (recipient, period_kind, period_start) row before talking to SMTP and marks it
-- 'sent' with the Message-ID afterwards, so a re-run (schedule retry, backfill, a second process)
-- skips what already went out; `--resend` is the only way past a 'sent' row. 'bounced' = refused
-- permanently by the server (5xx), 'failed' = gave up after retries; both keep the last error and
-- are retried by the next run. 'sending' rows older than a few minutes are from a crashed run.

CREATE TABLE funnelhouse.report_deliveries (
    id BIGSERIAL PRIMARY KEY,
    recipient TEXT NOT NULL,
    period_kind TEXT NOT NULL CHECK (period_kind IN ('daily', 'weekly')),
    period_start DATE NOT NULL,
    scope TEXT NOT NULL,
    language TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'bounced', 'failed')),
    message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error TEXT,
    size_bytes BIGINT,
    sent_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT report_deliveries_once UNIQUE (recipient, period_kind, period_start),
    CHECK (status <> 'sent' OR (message_id IS NOT NULL AND sent_at IS NOT NULL))
);

CREATE INDEX report_deliveries_period ON funnelhouse.report_deliveries (period_kind, period_start, status);
