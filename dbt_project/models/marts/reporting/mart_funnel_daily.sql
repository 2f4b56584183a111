-- Stage entries by day, source channel, department and stage. "Converted" means a later transition
-- of the customer reached a further stage (stage order greater than this one's), and the days to the
-- next stage run to the first such transition: the next journey row may be a step back, which is
-- not the next stage.
with transitions as (
    select * from {{ ref('fct_stage_transitions') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

employees as (
    select * from {{ ref('dim_employees') }}
),

-- For each entry, the customer's first later transition (in the order the journey records them:
-- time, then id) to a further stage (stage order greater than this one's). A customer who steps back
-- and then forward again to a stage no further has not converted from the stage it left; a skipped
-- stage is no obstacle (Attention -> Action converts from Attention). No row when none followed.
advances as (
    select
        entered.transition_id as transition_id,
        min(later.entered_at) as advanced_at
    from transitions as entered
    inner join transitions as later on later.customer_id = entered.customer_id
    where later.stage_order > entered.stage_order
        and (later.entered_at, later.transition_id) > (entered.entered_at, entered.transition_id)
    group by entered.transition_id
),

entries as (
    select
        transitions.entered_date as entry_date,
        customers.source_channel as source_channel,
        ifNull(employees.department, 'unassigned') as department,
        transitions.stage as stage,
        transitions.stage_order as stage_order,
        transitions.customer_id as customer_id,
        advances.advanced_at is not null as has_converted,
        transitions.exited_at is not null as has_exited,
        dateDiff('day', transitions.entered_date, toDate(advances.advanced_at)) as days_to_next_stage
    from transitions
    inner join customers on transitions.customer_id = customers.customer_id
    left join employees on customers.assigned_employee_id = employees.employee_id
    left join advances on transitions.transition_id = advances.transition_id
),

final as (
    select
        entry_date,
        source_channel,
        department,
        stage,
        any(stage_order) as stage_order,
        toUInt64(count()) as stage_entries,
        toUInt64(uniqExact(customer_id)) as customers_entered,
        toUInt64(countIf(has_converted)) as converted_entries,
        toFloat64(countIf(has_converted)) / count() as conversion_rate,
        toUInt64(countIf(has_exited)) as exited_entries,
        -- the median of an even number of entries is the mean of the middle two (medianExact would
        -- return the upper one: 10 for 2 and 10, not 6)
        if(countIf(has_converted) = 0, null,
           quantileExactInclusiveIf(0.5)(toFloat64(days_to_next_stage), has_converted)) as median_days_to_next_stage
    from entries
    group by entry_date, source_channel, department, stage
)

select * from final
