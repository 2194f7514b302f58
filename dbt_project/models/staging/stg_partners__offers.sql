select
    offer_id,
    publisher_business_id,
    title,
    distributor_business_ids,
    reward_per_client,
    coalesce(discount_pct, toDecimal32(0, 4)) as discount_pct,
    coalesce(cashback_pct, toDecimal32(0, 4)) as cashback_pct,
    currency,
    capacity,
    audience_min_age,
    audience_max_age,
    audience_gender,
    valid_from,
    valid_to
from {{ source('partners', 'partner_offers') }} final
