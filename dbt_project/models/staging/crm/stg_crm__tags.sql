with source as (
    select * from {{ source('crm', 'tags') }} final
),

renamed as (
    select
        id as tag_id,
        name as tag_name,
        category as tag_category,
        color,
        icon,
        description,
        toBool(ifNull(is_system, 0)) as is_system,
        display_order,
        created_at,
        updated_at
    from source
)

select * from renamed
