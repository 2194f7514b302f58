-- partner_offer_conversion per calendar month (UTC) of exposure: customers a distributor
-- sent the offer to that month, and of the customers first exposed that month (the
-- first-touch credit of int_offer_exposures) those who redeemed and were new to the
-- publisher. Each month is compared with the month before it for the same offer and
-- distributor: the relative change of the conversion rate, in percent.
{% set window_days = var('attribution_window_days', 30) %}

with sent as (
    select
        assumeNotNull(offer_id) as offer_id,
        business_id as distributor_business_id,
        toStartOfMonth(assumeNotNull(sent_at)) as month,
        uniqExact(customer_id) as exposed
    from {{ ref('int_message_sends') }}
    where trigger = 'partner_offer' and offer_id is not null and sent_at is not null
    group by offer_id, distributor_business_id, month
),

converted as (
    select
        offer_id,
        distributor_business_id,
        toStartOfMonth(exposed_at) as month,
        countIf(redeemed_at is not null) as redeemed,
        countIf(new_client) as new_customers,
        countIf(rewarded) as rewarded_customers,
        sum(reward) as reward_owed
    from {{ ref('int_offer_exposures') }}
    group by offer_id, distributor_business_id, month
),

monthly as (
    select
        s.offer_id as offer_id,
        s.distributor_business_id as distributor_business_id,
        s.month as month,
        s.exposed as exposed,
        coalesce(c.redeemed, 0) as redeemed,
        coalesce(c.new_customers, 0) as new_customers,
        coalesce(c.new_customers, 0) / s.exposed as conversion_rate,
        coalesce(c.rewarded_customers, 0) as rewarded_customers,
        toDecimal128(coalesce(c.reward_owed, 0), 2) as reward_owed
    from sent as s
    left join converted as c
        on s.offer_id = c.offer_id
        and s.distributor_business_id = c.distributor_business_id
        and s.month = c.month
)

select
    m.offer_id as offer_id,
    o.publisher_business_id as publisher_business_id,
    m.distributor_business_id as distributor_business_id,
    o.currency as currency,
    m.month as month,
    m.exposed as exposed,
    m.redeemed as redeemed,
    m.new_customers as new_customers,
    m.conversion_rate as conversion_rate,
    m.rewarded_customers as rewarded_customers,
    m.reward_owed as reward_owed,
    -- Every exposure of the month has had its full attribution window by the as-of date.
    toBool(toLastDayOfMonth(m.month) + {{ window_days }} <= {{ as_of_date() }})
        as attribution_window_complete,
    if(p.exposed > 0, p.conversion_rate, null) as previous_conversion_rate,
    -- Null when there is no previous month or its conversion was 0 (no base to compare).
    if(p.conversion_rate > 0, (m.conversion_rate / p.conversion_rate - 1) * 100, null)
        as conversion_rate_change_pct
from monthly as m
inner join {{ ref('stg_partners__offers') }} as o on m.offer_id = o.offer_id
left join monthly as p
    on m.offer_id = p.offer_id
    and m.distributor_business_id = p.distributor_business_id
    and addMonths(m.month, -1) = p.month
