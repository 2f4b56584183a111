-- A customer leaves a stage when its next journey row is recorded; the latest row is the stage
-- the customer is in now. Days are calendar days, counted up to the build date while current.
-- Only the journey rows up to the build date: a stage entered after it (a rebuild as of an earlier
-- day, a CRM clock ahead past midnight) has not been entered yet, so it neither ends the stage before
-- it nor becomes the current one, and no day count runs backwards (macros/as_of_date.sql).
with journey as (
    select * from {{ ref('stg_crm__customer_journey') }}
    where {{ by_build_date(day_of('transitioned_at')) }}
),

sequenced as (
    select
        *,
        leadInFrame(toNullable(transitioned_at)) over (
            partition by customer_id order by transitioned_at, journey_id
            rows between current row and 1 following
        ) as next_transitioned_at
    from journey
),

final as (
    select
        journey_id as transition_id,
        customer_id,
        from_stage,
        to_stage as stage,
        {{ stage_order('to_stage') }} as stage_order,
        {{ stage_order('to_stage') }} > {{ stage_order('from_stage') }} as is_forward,
        transitioned_at as entered_at,
        {{ day_of('transitioned_at') }} as entered_date,
        next_transitioned_at as exited_at,
        next_transitioned_at is null as is_current,
        toInt32(
            dateDiff(
                'day',
                {{ day_of('transitioned_at') }},
                coalesce({{ day_of('next_transitioned_at') }}, {{ as_of_date() }})
            )
        )
            as days_in_stage,
        recorded_duration_days,
        trigger_event
    from sequenced
)

select * from final
