{#- The daily overall_score (0..100) of mart_kpi_employee_daily. The seed names the column but not
    its formula; this one weighs the funnel's three layers, each component capped at its daily
    target (dbt vars kpi_target_*):
        20 * min(contacts / target_contacts, 1)                   ToFu reach
      + 10 * retention_rate (0 when there were no contacts)       ToFu retention
      + 20 * min(quality_conversations / target, 1)               MoFu quality
      + 10 * min(counter_questions / target, 1)                   MoFu counter-questions
      + 15 * min(accounts_opened / target, 1)                     MoFu accounts
      + 25 * min(max(net_deposit, 0) / target_net_deposit, 1)     BoFu money
    rounded to 2 decimals. -#}
{% macro overall_score(contacts, retention_rate, quality_conversations, counter_questions, accounts_opened, net_deposit) -%}
    round(
        20 * least(toFloat64({{ contacts }}) / {{ var('kpi_target_contacts') }}, 1)
        + 10 * ifNull({{ retention_rate }}, 0)
        + 20 * least(toFloat64({{ quality_conversations }}) / {{ var('kpi_target_quality_conversations') }}, 1)
        + 10 * least(toFloat64({{ counter_questions }}) / {{ var('kpi_target_counter_questions') }}, 1)
        + 15 * least(toFloat64({{ accounts_opened }}) / {{ var('kpi_target_accounts_opened') }}, 1)
        + 25 * least(greatest(toFloat64({{ net_deposit }}), 0) / {{ var('kpi_target_net_deposit') }}, 1),
        2
    )
{%- endmacro %}
