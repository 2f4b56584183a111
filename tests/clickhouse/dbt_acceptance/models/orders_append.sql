{{ config(materialized='incremental', incremental_strategy='append', order_by='(order_id, batch)') }}
select order_id, customer_id, order_date, amount, batch
from {{ ref('orders') }}
{% if is_incremental() %}
where batch = {{ var('batch') }}
{% else %}
where batch <= {{ var('batch') }}
{% endif %}
