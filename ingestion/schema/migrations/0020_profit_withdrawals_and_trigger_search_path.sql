-- 1. funnel_bofu.withdrawal_rate over 100.
--
-- 0001 capped the rate at 100 percent, a bound the design document does not set: it gives a
-- DECIMAL(5,2) percent (up to 999.99, the type's own limit) and lists profit withdrawals (盈利提现)
-- as a withdrawal reason, and net_deposit may be negative. A customer who withdrew 1500 out of 1000
-- deposited (150.00) was refused, failing the row or the whole landing file. Only a negative rate
-- stays impossible. The constraint keeps its name (the one PostgreSQL gave it), so errors read the
-- same. Dropped and added in one statement: rerun, it ends with the same constraint.
ALTER TABLE funnel_bofu
    DROP CONSTRAINT IF EXISTS funnel_bofu_withdrawal_rate_check,
    ADD CONSTRAINT funnel_bofu_withdrawal_rate_check CHECK (withdrawal_rate >= 0);

-- 2. Trigger functions whatever the caller's search_path.
--
-- A trigger function runs with the search_path of the session whose statement fired it.
-- record_deletion (0003) names sync_deletions unqualified, so every DELETE on the seed tables but
-- conversations (whose function, 0011, qualifies its names) failed for a hardened session or role
-- whose search_path leaves public out ("relation sync_deletions does not exist"); a schema of the
-- caller's listed before public could even receive the tombstones. Every trigger function of the
-- schema now sets its own: pg_catalog first (built-ins cannot be shadowed), then public, and the
-- session's temporary schema last (a temporary table named like a seed table cannot capture rows).
-- ALTER FUNCTION ... SET replaces the setting, so a rerun changes nothing.
ALTER FUNCTION set_updated_at() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION record_deletion() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION record_conversation_deletion() SET search_path = pg_catalog, public, pg_temp;
