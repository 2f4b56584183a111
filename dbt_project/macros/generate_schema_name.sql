{#- Custom schemas are used as named (staging, core, marts), never appended to the target schema.
    FUNNELHOUSE_SCHEMA_PREFIX isolates parallel builds (tests) on one server. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ env_var('FUNNELHOUSE_SCHEMA_PREFIX', '') }}{{ custom_schema_name or target.schema }}
{%- endmacro %}
