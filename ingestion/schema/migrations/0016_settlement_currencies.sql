-- Deposits and withdrawals: currency codes beyond ISO 4217's three letters.
--
-- The seed declares currency VARCHAR(10) with no closed set; 0001 narrowed it to three letters, so a
-- deposit settled in USDT, USDC, BTC or 1INCH (codes trading platforms settle in) was refused. The
-- rule is now upper-case letters and digits, 3 to 10 characters: upper case only, so `usdt` and
-- `USDT` never become two currencies. ingestion/contracts.py CURRENCY_PATTERN is the same pattern
-- (tests/ingestion/test_contracts_match_spec.py compares the two).
--
-- Safe to run twice: the old check is dropped if it is there and the new one replaces it.

ALTER TABLE deposits DROP CONSTRAINT IF EXISTS deposits_currency_check,
    ADD CONSTRAINT deposits_currency_check CHECK (currency ~ '^[A-Z0-9]{3,10}$');
ALTER TABLE withdrawals DROP CONSTRAINT IF EXISTS withdrawals_currency_check,
    ADD CONSTRAINT withdrawals_currency_check CHECK (currency ~ '^[A-Z0-9]{3,10}$');
