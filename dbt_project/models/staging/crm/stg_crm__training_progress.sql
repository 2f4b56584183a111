with source as (
    select * from {{ source('crm', 'training_progress') }} final
),

renamed as (
    select
        id as training_progress_id,
        employee_id,
        course_id,
        status as training_status,
        progress_percentage,
        score,
        started_at,
        completed_at,
        updated_at
    from source
)

select * from renamed
