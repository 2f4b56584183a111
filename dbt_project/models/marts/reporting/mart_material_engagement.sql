-- Engagement per material from the CRM's counters: interactions (likes + comments + shares) per view.
with materials as (
    select * from {{ ref('stg_crm__materials') }}
),

final as (
    select
        material_id,
        material_code,
        material_type,
        material_category,
        material_subcategory,
        title,
        is_active,
        toInt64(view_count) as view_count,
        toInt64(like_count) as like_count,
        toInt64(comment_count) as comment_count,
        toInt64(share_count) as share_count,
        toInt64(published_count) as published_count,
        toInt64(like_count + comment_count + share_count) as interaction_count,
        {{ capped_ratio('like_count + comment_count + share_count', 'view_count') }} as engagement_rate,
        {{ safe_ratio('view_count', 'published_count') }} as views_per_publication,
        created_at
    from materials
)

select * from final
