-- One row per provider event: provider retries share (provider, event_id) and collapse here.
select
    provider,
    event_id,
    event_type,
    nullIf(provider_message_id, '') as provider_message_id,
    nullIf(message_id, '') as message_id,
    status,
    recipient,
    text,
    error_code,
    occurred_at,
    received_at
from {{ source('messenger', 'messenger_events') }} final
