-- One row per trigger message (holdout members included) with the time it reached each
-- funnel stage: int_message_sends as the marts publish it. A view over that table:
-- joining sends to their events is done once, there.
select
    message_id,
    business_id,
    customer_id,
    phone_e164,
    trigger,
    campaign_id,
    channel,
    holdout,
    offer_id,
    provider_message_id,
    planned_at,
    sent_at,
    delivered_at,
    read_at,
    replied_at,
    failed_at,
    opted_out_at
from {{ ref('int_message_sends') }}
