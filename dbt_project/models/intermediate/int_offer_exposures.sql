{{ config(materialized="table", engine="MergeTree", order_by="customer_id") }}

-- One row per (offer_id, customer_id): the customer's first exposure to a partner offer
-- (a partner_offer message actually sent by a distributor), its first completed visit
-- at the publisher within the attribution window after it, and whether the customer
-- was new to the publisher. Attribution is first-touch: a customer exposed by several
-- distributors is credited to the first one. A new client earns the distributor the
-- offer's reward only while the offer has capacity left: new clients are ranked across
-- all distributors by redemption time and the first `capacity` are rewarded.
{% set window_days = var('attribution_window_days', 30) %}

with exposures as (
    select
        s.offer_id as offer_id,
        s.customer_id as customer_id,
        argMin(s.business_id, s.sent_at) as distributor_business_id,
        min(s.sent_at) as exposed_at
    from {{ ref('int_message_sends') }} as s
    where s.trigger = 'partner_offer' and s.offer_id is not null and s.sent_at is not null
    group by s.offer_id, s.customer_id
),

offers as (
    select * from {{ ref('stg_partners__offers') }}
),

publisher_visits as (
    -- Only visits at businesses that publish an offer: the join below hashes these, not
    -- every visit.
    select business_id, customer_id, visited_at, amount
    from {{ ref('fct_visits') }}
    where business_id in (select publisher_business_id from offers)
),

joined as (
    -- Each exposure with its publisher's visits of the customer, grouped back to one row.
    -- (A CTE is inlined wherever it is named: exposures are aggregated here once.)
    select
        e.offer_id as offer_id,
        e.customer_id as customer_id,
        any(e.distributor_business_id) as distributor_business_id,
        any(o.publisher_business_id) as publisher_business_id,
        any(e.exposed_at) as exposed_at,
        countIf(v.visited_at < e.exposed_at) as visits_before,
        minIf(
            v.visited_at,
            v.visited_at > e.exposed_at
            and v.visited_at <= e.exposed_at + interval {{ window_days }} day
        ) as redeemed_at_or_epoch,
        argMinIf(
            v.amount,
            v.visited_at,
            v.visited_at > e.exposed_at
            and v.visited_at <= e.exposed_at + interval {{ window_days }} day
        ) as redemption_amount_or_zero
    from exposures as e
    inner join offers as o on e.offer_id = o.offer_id
    left join publisher_visits as v
        -- (business_id, customer_id) as one string key: see the join_key macro.
        on {{ join_key('v.business_id', 'v.customer_id') }}
            = {{ join_key('o.publisher_business_id', 'e.customer_id') }}
    group by e.offer_id, e.customer_id
),

ranked as (
    select
        j.offer_id as offer_id,
        j.customer_id as customer_id,
        j.distributor_business_id as distributor_business_id,
        j.publisher_business_id as publisher_business_id,
        j.exposed_at as exposed_at,
        if(j.redeemed_at_or_epoch > j.exposed_at, j.redeemed_at_or_epoch, null) as redeemed_at,
        if(j.redeemed_at_or_epoch > j.exposed_at, j.redemption_amount_or_zero, null)
            as redemption_amount,
        j.visits_before = 0 as new_to_publisher,
        o.capacity as capacity,
        o.currency as currency,
        o.reward_per_client as reward_per_client,
        o.discount_pct as discount_pct,
        redeemed_at is not null and new_to_publisher as new_client,
        if(
            new_client,
            row_number() over (
                partition by offer_id, new_client order by redeemed_at, customer_id
            ),
            null
        ) as new_client_rank
    from joined as j
    inner join offers as o on j.offer_id = o.offer_id
)

select
    * except (capacity, reward_per_client),
    new_client and (capacity is null or new_client_rank <= capacity) as rewarded,
    if(rewarded, reward_per_client, toDecimal128(0, 2)) as reward
from ranked
