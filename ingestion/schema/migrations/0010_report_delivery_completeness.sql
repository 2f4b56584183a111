-- Complete and preliminary report deliveries (issue 7's ledger, fixed).
--
-- A report rendered from marts last refreshed before its period ended misses the period's last hours:
-- `funnelhouse report --send` sends it anyway, with a warning (`make demo` does, for the current week),
-- while the scheduled runs wait for a refresh. Until now either delivery counted as "the" report of
-- the period, so a preliminary one sent by hand made the scheduled run skip that recipient for good:
-- they never got the complete figures. `complete` tells them apart: a complete run sends again to
-- whoever has only a preliminary report (once), a preliminary run never replaces a complete one.
-- Rows from before this migration were all treated as complete, and stay so.

ALTER TABLE funnelhouse.report_deliveries ADD COLUMN complete BOOLEAN NOT NULL DEFAULT true;
