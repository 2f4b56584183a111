-- One row per customer who had a conversation: activity windows relative to the build date.
with conversations as (
    select * from {{ ref('fct_conversations') }}
),

final as (
    select
        customer_id,
        count() as conversation_count,
        countIf(sent_date > {{ as_of_date() }} - 7) as conversations_last_7_days,
        countIf(sent_date > {{ as_of_date() }} - 30) as conversations_last_30_days,
        countIf(is_quality_conversation and sent_date > {{ as_of_date() }} - 7) as quality_conversations_last_7_days,
        countIf(is_quality_conversation and sent_date > {{ as_of_date() }} - 30) as quality_conversations_last_30_days,
        countIf(sentiment = 'positive') as positive_conversation_count,
        countIf(sentiment = 'neutral') as neutral_conversation_count,
        countIf(sentiment = 'negative') as negative_conversation_count,
        countIf(is_counter_question) as counter_question_count,
        max(sent_at) as last_conversation_at
    from conversations
    group by customer_id
)

select * from final
