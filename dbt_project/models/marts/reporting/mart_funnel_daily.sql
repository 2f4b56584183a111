-- Stage entries by day, source channel, department and stage. "Converted" means a later transition
-- of the customer reached a further stage (stage order greater than this one's).
with transitions as (
    select * from {{ ref('fct_stage_transitions') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

employees as (
    select * from {{ ref('dim_employees') }}
),

-- The furthest stage of the customer's transitions after this one (in the order the journey
-- records them): a customer who steps back and then forward again to an earlier stage has not
-- converted from the stage it left. Null when no transition followed.
later as (
    select
        transition_id,
        max(toNullable(stage_order)) over (
            partition by customer_id order by entered_at, transition_id
            rows between 1 following and unbounded following
        ) as furthest_later_stage_order
    from transitions
),

entries as (
    select
        transitions.entered_date as entry_date,
        customers.source_channel as source_channel,
        ifNull(employees.department, 'unassigned') as department,
        transitions.stage as stage,
        transitions.stage_order as stage_order,
        transitions.customer_id as customer_id,
        ifNull(later.furthest_later_stage_order > transitions.stage_order, false) as has_converted,
        transitions.exited_at is not null as has_exited,
        transitions.days_in_stage as days_in_stage
    from transitions
    inner join customers on transitions.customer_id = customers.customer_id
    left join employees on customers.assigned_employee_id = employees.employee_id
    inner join later on transitions.transition_id = later.transition_id
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
        if(countIf(has_exited) = 0, null, medianExactIf(toFloat64(days_in_stage), has_exited))
            as median_days_to_next_stage
    from entries
    group by entry_date, source_channel, department, stage
)

select * from final
