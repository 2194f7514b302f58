select
    message_id,
    business_id,
    customer_id,
    phone_e164,
    trigger,
    campaign_id,
    channel,
    holdout,
    planned_at,
    offer_id,
    nullIf(provider_message_id, '') as provider_message_id
from {{ source('messenger', 'message_sends') }} final
