{#- The enumerations the models test with accepted_values, named once for staging, core and marts:
    `values: "{{ crm_values('department') }}"` (dbt renders a test's arguments, as a list here). The
    sets are the CHECK constraints of ingestion/schema/migrations/0001_seed_schema.sql; age_band is
    derived by replication (ingestion/replication/tables.py). The journey's stages are
    journey_stages() (macros/stages.sql). -#}
{% macro crm_values(name) -%}
    {{ return({
        'role': ['admin', 'manager', 'employee', 'trainer'],
        'employee_status': ['active', 'inactive', 'suspended'],
        'department': ['ToFu', 'MoFu', 'BoFu', 'VIP', '培训'],
        'employee_level': ['新人', '组员', 'A级执行者', '精英', '高手', '主管'],
        'material_type': ['image', 'video', 'text', 'mixed'],
        'age_band': ['unknown', 'under 25', '25-34', '35-44', '45-54', '55 and over'],
    }[name]) }}
{%- endmacro %}

{#- The departments of dim_employees and the marts: the seed's, and 'unassigned' for an employee (or
    a customer's employee) without one. -#}
{% macro mart_departments() -%}
    {{ return(crm_values('department') + ['unassigned']) }}
{%- endmacro %}
