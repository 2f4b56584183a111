{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='order_id',
          order_by='order_id') }}
-- The latest version of every order: an amended order replaces its earlier row.
select o.order_id as order_id, argMax(o.customer_id, o.batch) as customer_id,
       argMax(o.order_date, o.batch) as order_date, argMax(o.amount, o.batch) as amount,
       max(o.batch) as batch
from {{ ref('orders') }} as o
{% if is_incremental() %}
where o.order_id in (select order_id from {{ ref('orders') }} where batch = {{ var('batch') }})
  and o.batch <= {{ var('batch') }}
{% else %}
where o.batch <= {{ var('batch') }}
{% endif %}
group by o.order_id
