-- Per month: customers of business A (a completed visit there before) whose first
-- completed visit to business B fell in that month, and the partner offer that brought
-- them where there was one (the offer redeemed at that visit, else the offer B
-- published that A sent them within the attribution window). A customer of several
-- businesses counts in a flow from each of them.
with first_visits as (
    select
        business_id,
        customer_id,
        min(visited_at) as first_visit_at,
        argMin(offer_id, visited_at) as first_visit_offer_id
    from {{ ref('fct_visits') }}
    group by business_id, customer_id
),

pairs as (
    -- Every ordered pair (from, to) of a customer's businesses: the customer's first
    -- visits crossed with themselves per customer, so the visits are aggregated once (a
    -- self-join of first_visits would aggregate them twice). One-business customers
    -- have no pair.
    select
        customer_id,
        pair.1.1 as from_business_id,
        pair.1.2 as from_first_visit_at,
        pair.2.1 as to_business_id,
        pair.2.2 as to_first_visit_at,
        pair.2.3 as to_first_visit_offer_id
    from (
        select
            customer_id,
            groupArray((business_id, first_visit_at, first_visit_offer_id)) as firsts
        from first_visits
        group by customer_id
        having length(firsts) > 1
    )
    array join arrayFlatten(arrayMap(x -> arrayMap(y -> (x, y), firsts), firsts)) as pair
),

attributed as (
    select publisher_business_id, distributor_business_id, customer_id,
        argMin(offer_id, redeemed_at) as offer_id
    from {{ ref('int_offer_exposures') }}
    where redeemed_at is not null
    group by publisher_business_id, distributor_business_id, customer_id
)

select
    toStartOfMonth(p.to_first_visit_at) as month,
    p.from_business_id as from_business_id,
    p.to_business_id as to_business_id,
    coalesce(p.to_first_visit_offer_id, nullIf(x.offer_id, '')) as offer_id,
    count() as customers
from pairs as p
left join attributed as x
    on x.publisher_business_id = p.to_business_id
    and x.distributor_business_id = p.from_business_id
    and x.customer_id = p.customer_id
where p.from_business_id != p.to_business_id and p.from_first_visit_at < p.to_first_visit_at
group by month, from_business_id, to_business_id, offer_id
