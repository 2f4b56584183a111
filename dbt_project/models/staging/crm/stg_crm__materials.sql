with source as (
    select * from {{ source('crm', 'materials') }} final
),

renamed as (
    select
        id as material_id,
        material_code,
        type as material_type,
        category as material_category,
        subcategory as material_subcategory,
        title,
        hashtags as hashtags_json,
        purpose,
        suitable_stages as suitable_stages_json,
        ifNull(views, 0) as view_count,
        ifNull(likes, 0) as like_count,
        ifNull(comments, 0) as comment_count,
        ifNull(shares, 0) as share_count,
        ifNull(published_count, 0) as published_count,
        tags as tags_json,
        toBool(ifNull(is_active, 1)) as is_active,
        created_by as created_by_employee_id,
        created_at,
        updated_at
    from source
)

select * from renamed
