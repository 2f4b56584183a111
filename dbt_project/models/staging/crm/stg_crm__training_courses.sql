with source as (
    select * from {{ source('crm', 'training_courses') }} final
),

renamed as (
    select
        id as course_id,
        course_code,
        title as course_title,
        description,
        course_type,
        level as course_level,
        duration_days,
        toBool(ifNull(is_required, 0)) as is_required,
        display_order,
        created_at,
        updated_at
    from source
)

select * from renamed
