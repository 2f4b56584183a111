{{ config(materialized='view') }}
-- Customer 1 moves to France in batch 2: the snapshot must record the change.
select
    customer_id,
    name,
    if({{ var('batch') }} >= 2 and customer_id = 1, 'FR', country) as country
from {{ ref('customers') }}
