with source as (
    select * from {{ source('crm', 'system_settings') }} final
),

renamed as (
    select
        id as setting_id,
        key as setting_key,
        -- NULL but for the keys replication copies the value of (tables.py WAREHOUSE_SETTING_KEYS)
        warehouse_value as setting_value,
        value_type,
        category as setting_category,
        description,
        toBool(ifNull(is_public, 0)) as is_public,
        toBool(ifNull(has_value, 0)) as has_value,
        updated_by as updated_by_employee_id,
        updated_at
    from source
)

select * from renamed
