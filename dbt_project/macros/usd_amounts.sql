-- Money in US dollars, one rule for every fact that holds money (fct_deposits, fct_withdrawals):
-- the amount times the seed fx_rates_to_usd's rate of its currency with the latest valid_from on or
-- before the movement's day, rounded to the cent (half away from zero); NULL without a rate.
-- Use them together: amount_in_usd('amount') in the select list, join_usd_rate(currency, day) after
-- the from clause, and assert_confirmed_amounts_in_usd(movements) as a post-hook.

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

{% macro assert_confirmed_amounts_in_usd(movements) -%}
    -- A confirmed movement without a rate fails the model, naming its currencies: every money measure
    -- of the marts sums amount_usd, so it would be left out of them (and summed as USD it would be
    -- wrong). A post-hook rather than a data test so that hourly runs, which run no tests, stop too;
    -- the run's other post-hooks (the watermark) do not run, so the next run takes the rows up again.
    select throwIf(count() > 0, (
        select concat(
            'confirmed {{ movements }} in a currency without a rate in the seed fx_rates_to_usd on their day: ',
            arrayStringConcat(arraySort(groupUniqArray(currency)), ', '),
            ' (add a row with valid_from on or before it to dbt_project/seeds/marts/core/fx_rates_to_usd.csv)'
        )
        from {{ this }} where is_confirmed and amount_usd is null
    ))
    from {{ this }}
    where is_confirmed and amount_usd is null
{%- endmacro %}
