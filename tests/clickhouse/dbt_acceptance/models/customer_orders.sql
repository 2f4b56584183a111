-- Unmatched LEFT JOIN rows carry 0 rather than NULL in ClickHouse (join_use_nulls = 0): count by condition.
select c.customer_id as customer_id, c.name as name, c.country as country,
       countIf(o.order_id > 0) as orders, sum(o.amount) as total
from {{ ref('stg_customers') }} as c
left join {{ ref('orders_current') }} as o on o.customer_id = c.customer_id
group by c.customer_id, c.name, c.country
