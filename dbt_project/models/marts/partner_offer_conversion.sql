-- Per partner offer and distributor: customers exposed, redeemed within the attribution
-- window, new to the publisher, conversion, and the money: reward owed to the distributor
-- (reward per new client while the offer has capacity; see int_offer_exposures),
-- discount given, cashback accrued on the offer by the redeeming customers.
with sent as (
    -- Every customer a distributor sent the offer to (not only first touches).
    select offer_id, business_id as distributor_business_id, uniqExact(customer_id) as exposed
    from {{ ref('int_message_sends') }}
    where trigger = 'partner_offer' and offer_id is not null and sent_at is not null
    group by offer_id, distributor_business_id
),

cashback as (
    select assumeNotNull(offer_id) as offer_id, customer_id, sum(amount) as accrued
    from {{ ref('cashback_ledger') }}
    where event_type = 'accrual' and offer_id is not null
    group by offer_id, customer_id
),

per_distributor as (
    select
        e.offer_id as offer_id,
        e.distributor_business_id as distributor_business_id,
        countIf(e.redeemed_at is not null) as redeemed,
        countIf(e.new_client) as new_customers,
        countIf(e.rewarded) as rewarded_customers,
        sum(e.reward) as reward_owed,
        -- Amounts paid are after the discount: the discount is amount × pct / (100 − pct).
        sumIf(
            e.redemption_amount * e.discount_pct / (100 - e.discount_pct),
            e.redeemed_at is not null
        ) as discount_given,
        sumIf(c.accrued, e.redeemed_at is not null and c.offer_id != '') as cashback_accrued
    from {{ ref('int_offer_exposures') }} as e
    left join cashback as c on e.offer_id = c.offer_id and e.customer_id = c.customer_id
    group by offer_id, distributor_business_id
)

select
    o.offer_id as offer_id,
    o.publisher_business_id as publisher_business_id,
    s.distributor_business_id as distributor_business_id,
    o.currency as currency,
    s.exposed as exposed,
    coalesce(d.redeemed, 0) as redeemed,
    coalesce(d.new_customers, 0) as new_customers,
    if(s.exposed > 0, coalesce(d.new_customers, 0) / s.exposed, 0) as conversion_rate,
    coalesce(d.rewarded_customers, 0) as rewarded_customers,
    toDecimal128(coalesce(d.reward_owed, 0), 2) as reward_owed,
    toDecimal128(coalesce(d.discount_given, 0), 2) as discount_given,
    toDecimal128(coalesce(d.cashback_accrued, 0), 2) as cashback_accrued
from sent as s
inner join {{ ref('stg_partners__offers') }} as o on s.offer_id = o.offer_id
left join per_distributor as d
    on s.offer_id = d.offer_id and s.distributor_business_id = d.distributor_business_id
