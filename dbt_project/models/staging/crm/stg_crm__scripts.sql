with source as (
    select * from {{ source('crm', 'scripts') }} final
),

renamed as (
    select
        id as script_id,
        script_code,
        category as script_category,
        subcategory as script_subcategory,
        scenario,
        level as script_level,
        purpose,
        usage_count as recorded_usage_count,
        success_count as recorded_success_count,
        success_rate as recorded_success_rate_percent,
        avg_rating,
        toBool(ifNull(is_active, 1)) as is_active,
        created_by as created_by_employee_id,
        created_at,
        updated_at
    from source
)

select * from renamed
