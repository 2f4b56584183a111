with source as (
    select * from {{ source('crm', 'customer_journey') }} final
),

renamed as (
    select
        id as journey_id,
        source_key,
        customer_id,
        from_stage,
        to_stage,
        duration_days as recorded_duration_days,
        trigger_event,
        toBool(ifNull(has_notes, 0)) as has_notes,
        created_at as transitioned_at,
        updated_at
    from source
)

select * from renamed
