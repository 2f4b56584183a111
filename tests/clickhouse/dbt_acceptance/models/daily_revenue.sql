-- depends_on: {{ ref('orders') }}
{{ config(materialized='incremental', incremental_strategy='insert_overwrite', partition_by='order_date',
          order_by='order_date') }}
-- Days touched by the current batch are recomputed whole and replace their partitions.
select order_date, sum(amount) as revenue, count() as orders
from {{ ref('orders_current') }}
{% if is_incremental() %}
where order_date in (select order_date from {{ ref('orders') }} where batch = {{ var('batch') }})
{% endif %}
group by order_date
