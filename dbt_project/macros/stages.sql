{#- The customer journey's stages in order (seed: customers.current_stage). -#}
{% macro journey_stages() -%}
    {{ return(['Awareness', 'Attention', 'Trust', 'Engage', 'Action', 'Subscribe', 'Growth', 'Loyal', 'Advocate']) }}
{%- endmacro %}

{#- 1-based position of a stage in the journey, 0 for an unknown value. -#}
{% macro stage_order(column) -%}
    indexOf([{% for stage in journey_stages() %}'{{ stage }}'{% if not loop.last %}, {% endif %}{% endfor %}], {{ column }})
{%- endmacro %}
