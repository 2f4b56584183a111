-- Money in US dollars, one rule for every fact that holds money (fct_deposits, fct_withdrawals):
-- the amount times the seed fx_rates_to_usd's rate of its currency with the latest valid_from on or
-- before the movement's day, rounded to the cent (half away from zero); NULL without a rate, so the
-- facts' confirmed_*_have_a_usd_rate tests fail rather than a wrong sum being published.
-- Use both together: {{ amount_in_usd('amount') }} in the select list, {{ join_usd_rate(...) }} after
-- the from clause.

{% macro amount_in_usd(amount) -%}
    toDecimal128(round({{ amount }} * usd_rates.usd_per_unit, 2), 2)
{%- endmacro %}

{% macro join_usd_rate(currency, day) -%}
    -- the seed's rates renamed so that no column clashes with the movement's, and the rate Nullable so
    -- that a movement without one gets NULL whatever the session's join_use_nulls
    asof left join (
        select currency as rate_currency, valid_from as rate_valid_from, toNullable(usd_per_unit) as usd_per_unit
        from {{ ref('fx_rates_to_usd') }}
    ) as usd_rates
        on {{ currency }} = usd_rates.rate_currency and {{ day }} >= usd_rates.rate_valid_from
{%- endmacro %}
