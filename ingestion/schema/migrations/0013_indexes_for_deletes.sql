-- Deleting a referenced row makes PostgreSQL look for rows that still reference it. Without an index
-- on the referencing columns that is a scan of the referencing table per deleted row: deleting
-- 20,000 conversations of the 2,000-customer demo took ~30 s, nearly all of it scanning
-- conversation_events. The seed indexes neither of these two large references.
CREATE INDEX idx_conversation_events_conversation ON conversation_events (conversation_id, conversation_sent_at);
CREATE INDEX idx_customers_referrer_id ON customers (referrer_id);
