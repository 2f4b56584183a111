with source as (
    select * from {{ source('crm', 'conversation_events') }} final
),

renamed as (
    select
        id as conversation_event_id,
        source_key,
        conversation_id,
        conversation_sent_at,
        customer_id,
        employee_id,
        event_type,
        multiIf(
            event_type = '反问', 'counter_question',
            event_type = '框架输出', 'framework_output',
            event_type = '粘度建立', 'rapport_building',
            event_type = '推进动作', 'advancing_action',
            event_type = '高质量对话', 'quality_conversation',
            event_type = '意向信号', 'intention_signal',
            event_type = '风险信号', 'risk_signal',
            'other'
        ) as event_type_code,
        impact_score,
        toBool(ifNull(has_event_data, 0)) as has_event_data,
        created_at,
        updated_at
    from source
)

select * from renamed
