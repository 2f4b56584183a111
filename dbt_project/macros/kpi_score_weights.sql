{#- The CRM's own weights of the daily overall score (system_settings key kpi.overall_score_weights),
    as mart_kpi_employee_daily applies them.

    The setting's shape is the CRM's (ingestion/generate/rules.py OVERALL_SCORE_WEIGHTS): a JSON object
    of points per unit, one for each of the seven keys of kpi_score_weight_keys, the score being
        min(100, sum(weight * count) + bofu_net_deposit_per_1000_usd * max(net deposit USD, 0) / 1000)
    The cap at 100 and non-negative weights keep it within 0..100, the range of the mart's own formula
    (macro overall_score). The weights are points per unit, not shares of 100: rescaling them to sum
    to 100 would change what a manager set (4 points a contact would become some other number).

    Valid: a JSON object holding every key exactly once with a finite number >= 0 (other keys are
    ignored). A key given twice is invalid: ClickHouse's JSONExtract reads the first value, the CRM
    (Python, PostgreSQL jsonb) the last, so the mart and the CRM would score with different weights.
    The mart uses the CRM's formula with a valid setting, and its own documented formula (the defaults,
    macro overall_score with the vars kpi_target_*) without one or with an invalid one. The fallback is
    never silent: the model warns at every run that builds it (kpi_score_weights_warning, a pre-hook:
    `funnelhouse build` runs no tests) and the warning test kpi_score_weights_setting_is_valid fails.

    Rounding: the CRM rounds the exact Decimal score half up to cents (rules.py overall_score). The
    Float64 sum lands a hair off a half-cent tie (10 + 2 * 1002.5 / 1000 is 12.00499999...), where
    round(x, 2) goes down, and so does a cast to Decimal (it truncates). So the score is scaled to cents
    and rounded to 1e-6 cent first, which puts every tie on an exact .5 (the terms are >= 0, so each is
    <= the sum, and Float64 values below 100 are off by about 1e-14), then floor(+ 0.5) rounds half up. A score the exact rule puts within 5e-9 of a tie (a weight with many
    decimals times the net deposit) counts as the tie.

    Setting values stay in PostgreSQL (they may be secrets) but for the keys models read, this one
    among them (ingestion/replication/tables.py WAREHOUSE_SETTING_KEYS): the weights are
    stg_crm__system_settings' setting_value of this key. -#}

{% macro kpi_score_weights_setting_key() -%}
    kpi.overall_score_weights
{%- endmacro %}

{#- The setting's keys, in the order of the counts kpi_overall_score is given (the net deposit last). -#}
{% macro kpi_score_weight_keys() -%}
    {{ return([
        'tofu_contacts', 'tofu_retained', 'mofu_quality_conversations', 'mofu_反问_count',
        'mofu_accounts_opened', 'bofu_deposits_count', 'bofu_net_deposit_per_1000_usd',
    ]) }}
{%- endmacro %}

{#- A one-row query: the setting's text (NULL when absent), what is wrong with it (weights_problem:
    '' when absent or valid), whether it is valid (weights_valid, 0 or 1) and one Float64 column per
    key (w_<n>, in kpi_score_weight_keys order). -#}
{% macro kpi_score_weights() -%}
    {%- set keys = kpi_score_weight_keys() -%}
    select
        weights_setting,
        weights_problem,
        toUInt8(weights_setting is not null and weights_problem = '') as weights_valid
        {%- for key in keys %},
        JSONExtractFloat(ifNull(weights_setting, ''), '{{ key }}') as w_{{ loop.index }}
        {%- endfor %}
    from (
        select
            weights_setting,
            -- the first problem found, in the order a reader would fix them
            multiIf(
                weights_setting is null, '',
                not isValidJSON(weights_setting), 'not valid JSON',
                JSONType(weights_setting) != 'Object', 'not a JSON object',
                {%- for key in keys %}
                countEqual(setting_keys, '{{ key }}') = 0, 'key {{ key }} is missing',
                countEqual(setting_keys, '{{ key }}') > 1,
                'key {{ key }} is given ' || toString(countEqual(setting_keys, '{{ key }}')) || ' times',
                JSONType(weights_setting, '{{ key }}') not in ('Int64', 'UInt64', 'Double'),
                'key {{ key }} is not a number',
                not isFinite(JSONExtractFloat(weights_setting, '{{ key }}'))
                    or JSONExtractFloat(weights_setting, '{{ key }}') < 0,
                'key {{ key }} is not a finite number >= 0',
                {%- endfor %}
                ''
            ) as weights_problem
        from (
            select weights_setting, JSONExtractKeys(ifNull(weights_setting, '')) as setting_keys
            from (
                select (
                    select any(setting_value) from {{ ref('stg_crm__system_settings') }}
                    where setting_key = '{{ kpi_score_weights_setting_key() }}'
                ) as weights_setting
            )
        )
    )
{%- endmacro %}

{#- Pre-hook of mart_kpi_employee_daily: a dbt warning (in the output of `funnelhouse build`, of a
    Dagster run, of `dbt run`) naming the setting and what is wrong with it, when it is present but
    invalid and the mart is scored with the default formula. Once per run of the model; nothing when
    dbt only parses or compiles. Renders no SQL. -#}
{% macro kpi_score_weights_warning() -%}
    {%- if execute -%}
        {%- set problem = run_query(kpi_score_weights()).columns[1].values()[0] -%}
        {%- if problem -%}
            {%- do exceptions.warn(
                "System setting " ~ kpi_score_weights_setting_key() ~ " is invalid (" ~ problem ~ "): "
                ~ model.name ~ " scores every day with its default formula (macro overall_score) until it is fixed."
            ) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- The overall score (0..100): the CRM's formula with the weights of `weights` (a relation alias of
    kpi_score_weights' row) when they are valid, else the documented default (macro overall_score).
    `deposits_count` is the one count the default formula does not weigh. -#}
{% macro kpi_overall_score(weights, contacts, retained, retention_rate, quality_conversations, counter_questions,
    accounts_opened, deposits_count, net_deposit) -%}
    if(
        {{ weights }}.weights_valid = 1,
        -- half up at cents, as the CRM rounds its exact Decimal (see the top of this file)
        floor(round(100 * least(
            100,
            {%- for count in [contacts, retained, quality_conversations, counter_questions, accounts_opened, deposits_count] %}
            {{ weights }}.w_{{ loop.index }} * toFloat64({{ count }}) +
            {%- endfor %}
            {{ weights }}.w_7 * greatest(toFloat64({{ net_deposit }}), 0) / 1000
        ), 6) + 0.5) / 100,
        {{ overall_score(
            contacts=contacts,
            retention_rate=retention_rate,
            quality_conversations=quality_conversations,
            counter_questions=counter_questions,
            accounts_opened=accounts_opened,
            net_deposit=net_deposit,
        ) }}
    )
{%- endmacro %}

{#- The months of the built KPI mart `relation` holding a score other than the weights in force give
    (SQL of toYYYYMM values): after the setting changed (or came or went), every month it moves. Every
    run of the mart but a full refresh (incremental or a Dagster partition run) rebuilds them too, so
    changed weights reach days it would not recompute otherwise;
    the row's own counts are its inputs, so nothing but the weights can make them differ. -#}
{% macro kpi_months_scored_otherwise(relation) -%}
    select distinct toYYYYMM(kpi.kpi_date)
    from {{ relation }} as kpi
    cross join ({{ kpi_score_weights() }}) as weights
    where kpi.overall_score != {{ kpi_overall_score(
        'weights',
        contacts='kpi.tofu_contacts',
        retained='kpi.tofu_retained',
        retention_rate='kpi.tofu_retention_rate',
        quality_conversations='kpi.mofu_quality_conversations',
        counter_questions='kpi.mofu_counter_question_count',
        accounts_opened='kpi.mofu_accounts_opened',
        deposits_count='kpi.bofu_deposits_count',
        net_deposit='kpi.bofu_net_deposit',
    ) }}
{%- endmacro %}

{#- Warning test: a setting that is present but not valid (the mart then falls back to its own
    formula). Returns the setting's key and what is wrong; `model` is the mart it is declared on. -#}
{% test kpi_score_weights_setting_is_valid(model) %}
    select '{{ kpi_score_weights_setting_key() }}' as setting_key, weights_problem
    from ({{ kpi_score_weights() }})
    where weights_setting is not null and weights_valid = 0
{% endtest %}
