-- One row per partner offer ("lot"): publisher, distributors, money terms, capacity,
-- audience and validity. A view over the staged offers (a few hundred rows).
select
    offer_id,
    publisher_business_id,
    title,
    distributor_business_ids,
    reward_per_client,
    discount_pct,
    cashback_pct,
    currency,
    capacity,
    audience_min_age,
    audience_max_age,
    audience_gender,
    valid_from,
    valid_to
from {{ ref('stg_partners__offers') }}
