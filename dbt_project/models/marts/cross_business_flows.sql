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

attributed as (
    select publisher_business_id, distributor_business_id, customer_id,
        argMin(offer_id, redeemed_at) as offer_id
    from {{ ref('int_offer_exposures') }}
    where redeemed_at is not null
    group by publisher_business_id, distributor_business_id, customer_id
)

select
    toStartOfMonth(b.first_visit_at) as month,
    a.business_id as from_business_id,
    b.business_id as to_business_id,
    coalesce(b.first_visit_offer_id, nullIf(x.offer_id, '')) as offer_id,
    count() as customers
from first_visits as b
inner join first_visits as a on a.customer_id = b.customer_id
left join attributed as x
    on x.publisher_business_id = b.business_id
    and x.distributor_business_id = a.business_id
    and x.customer_id = b.customer_id
where a.business_id != b.business_id and a.first_visit_at < b.first_visit_at
group by month, from_business_id, to_business_id, offer_id
