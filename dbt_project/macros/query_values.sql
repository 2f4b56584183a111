{#- The first column of `sql`'s rows as a list (empty when it returns no rows), for macros that read a
    value or a list from the warehouse while compiling. Read row by row: dbt-clickhouse gives a result
    of no rows no columns at all, so `run_query(sql).columns[0]` fails exactly when nothing matched. -#}
{% macro first_column_values(sql) -%}
    {%- set values = [] -%}
    {%- for row in run_query(sql).rows -%}
        {%- do values.append(row[0]) -%}
    {%- endfor -%}
    {{- return(values) -}}
{%- endmacro %}
