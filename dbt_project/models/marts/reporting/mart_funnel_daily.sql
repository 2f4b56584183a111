-- Stage entries by day, source channel, department and stage. "Converted" means a later transition
-- of the customer reached a further stage (stage order greater than this one's), and the days to the
-- next stage run to the first such transition: the next journey row may be a step back, which is
-- not the next stage.
-- Entries are journey rows, plus one Awareness entry per customer on first contact: customers start
-- in Awareness and the CRM records no journey row for entering it (a journey row back to Awareness
-- is an ordinary entry).
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
    inner join transitions as later on entered.customer_id = later.customer_id
    where later.stage_order > entered.stage_order
        and (later.entered_at, later.transition_id) > (entered.entered_at, entered.transition_id)
    group by entered.transition_id
),

-- Per customer with journey rows: the day of the first one (the customer left Awareness then) and
-- the first transition beyond Awareness.
journeys as (
    select
        customer_id,
        min(entered_date) as first_entered_date,
        minIf(toNullable(entered_at), stage_order > {{ stage_order("'Awareness'") }}) as advanced_at
    from transitions
    group by customer_id
),

-- Awareness entries, one per customer, on first contact (dim_customers.first_contact_date); a customer
-- whose first journey row is dated earlier (the CRM's dates disagree) was in Awareness no later than
-- that row, so it entered on the earlier of the two days. Every journey row of the customer is then on
-- or after the entry: its first transition beyond Awareness is the advance, and any row is the exit.
-- Only entries by the build date (a customer first contacted after it has not entered yet).
awareness_entries as (
    select
        customers.customer_id as customer_id,
        -- Date32, as first_contact_date (which may be before 1970): toDate() would wrap such a day around
        -- to one after 2100, after the build date, and lose the entry
        least(customers.first_contact_date, ifNull(journeys.first_entered_date, customers.first_contact_date))
            as entered_date,
        journeys.advanced_at as advanced_at,
        journeys.customer_id is not null as has_exited
    from customers
    left join journeys on customers.customer_id = journeys.customer_id
    where {{ by_build_date('entered_date') }}
),

-- Every entry in one shape: the journey rows and the Awareness entries.
stage_entries as (
    select
        transitions.customer_id as customer_id,
        transitions.entered_date as entered_date,
        transitions.stage as stage,
        transitions.stage_order as stage_order,
        advances.advanced_at as advanced_at,
        transitions.exited_at is not null as has_exited
    from transitions
    left join advances on transitions.transition_id = advances.transition_id
    union all
    select
        customer_id,
        entered_date,
        'Awareness' as stage,
        {{ stage_order("'Awareness'") }} as stage_order,
        advanced_at,
        has_exited
    from awareness_entries
),

entries as (
    select
        stage_entries.entered_date as entry_date,
        customers.source_channel as source_channel,
        ifNull(employees.department, 'unassigned') as department,
        stage_entries.stage as stage,
        stage_entries.stage_order as stage_order,
        stage_entries.customer_id as customer_id,
        stage_entries.advanced_at is not null as has_converted,
        stage_entries.has_exited as has_exited,
        dateDiff('day', stage_entries.entered_date, {{ day_of('stage_entries.advanced_at') }}) as days_to_next_stage
    from stage_entries
    inner join customers on stage_entries.customer_id = customers.customer_id
    left join employees on customers.assigned_employee_id = employees.employee_id
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
