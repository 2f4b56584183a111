-- One row per customer who had a conversation up to the build date: activity windows ending on it,
-- sentiment counts and the last message up to it (a message stamped after it, e.g. in a rebuild as of
-- an earlier day, has not been sent yet: macros/as_of_date.sql, periods.sql).
with conversations as (
    select * from {{ ref('fct_conversations') }}
    where {{ by_build_date('sent_date') }}
),

final as (
    select
        customer_id,
        count() as conversation_count,
        countIf({{ in_last_days('sent_date', 7) }}) as conversations_last_7_days,
        countIf({{ in_last_days('sent_date', 30) }}) as conversations_last_30_days,
        countIf(is_quality_conversation and {{ in_last_days('sent_date', 7) }}) as quality_conversations_last_7_days,
        countIf(is_quality_conversation and {{ in_last_days('sent_date', 30) }}) as quality_conversations_last_30_days,
        countIf(sentiment = 'positive') as positive_conversation_count,
        countIf(sentiment = 'neutral') as neutral_conversation_count,
        countIf(sentiment = 'negative') as negative_conversation_count,
        countIf(is_counter_question) as counter_question_count,
        max(sent_at) as last_conversation_at
    from conversations
    group by customer_id
)

select * from final
