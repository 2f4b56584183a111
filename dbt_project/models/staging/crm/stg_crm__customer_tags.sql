with source as (
    select * from {{ source('crm', 'customer_tags') }} final
),

renamed as (
    select
        id as customer_tag_id,
        customer_id,
        tag_id,
        tagged_by as tagged_by_employee_id,
        tagged_at,
        toBool(ifNull(is_auto, 0)) as is_auto,
        updated_at
    from source
)

select * from renamed
