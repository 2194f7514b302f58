-- One row per partner event; a re-delivered event (same partner_id, event_id) collapses here.
select
    partner_id,
    event_id,
    partner_id || ':' || event_id as partner_event_key,
    event_type,
    phone_e164,
    customer_id,
    amount,
    currency,
    occurred_at,
    nullIf(offer_id, '') as offer_id,
    _loaded_at as loaded_at
from {{ source('partners', 'partner_events') }} final
